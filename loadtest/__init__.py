"""Load and benchmark tools (`interview bench-control`)."""
