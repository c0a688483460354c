"""Schedules: the cron expressions they fire on (cron.py, pure)."""
