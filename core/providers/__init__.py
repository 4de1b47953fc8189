"""Provider adapters and the small protocols they implement. Providers never touch the database."""
