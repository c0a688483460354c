"""The trainers' errors. Everything here may raise them; nothing here imports the service.

    ValueError
    └── ConfigError     a configuration or parameter value out of range or unknown; `path` names
                        the field, dotted (`params.seq_len`), so the service can answer with it
"""

from __future__ import annotations


class ConfigError(ValueError):
    """A configuration value is out of range or unknown. `path` names the field, dotted."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message
