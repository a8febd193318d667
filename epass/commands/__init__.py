"""The work behind each CLI command.

Each module builds a report (plain dicts and lists, the `--json` schema of
docs/json.md) and renders the same report as human text, so the two
outputs never disagree.
"""
