"""The threat model as tests: each module is one attacker or fault, each test one thing they tried and what stopped
them (docs/security.md opens with the table that points here)."""
