"""Webhook delivery primitives, pure and small: Standard Webhooks 1.0 signing (`signing`), the rule that a
webhook URL may only reach public addresses, checked on the addresses it resolves to (`addresses`), and one
bounded HTTP POST to exactly those addresses (`transport`). They keep no state and touch no database; whatever
queues, retries and records deliveries builds on them."""
