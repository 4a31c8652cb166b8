"""The per-interview Ray actors, the warm pool, and the interview engines they drive."""
