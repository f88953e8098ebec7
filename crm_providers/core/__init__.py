"""What the three provider stand-ins share: store, budgets, webhooks, faults, stats, /_standin/."""
