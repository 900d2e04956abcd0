"""The chaos suite: worker processes killed and databases faulted while runs flow, then an
invariant check of every run. ``make chaos`` / ``make chaos-quick``; see README.md here."""
