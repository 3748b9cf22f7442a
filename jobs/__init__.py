"""Task entry points: read settings once, open storage and services, call the library."""
