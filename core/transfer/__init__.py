"""Moving assets between providers: verified downloads into the store, uploads, single-flight."""
