"""Matrix problems of the seeds (SPEC §4), batched over runs."""
