"""HTTP plumbing shared by transfers and provider adapters: URL safety, retries, pacing, streaming."""
