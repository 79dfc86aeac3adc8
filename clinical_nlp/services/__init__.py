"""Services: store-backed operations that combine the store, the audit log and the policies."""
