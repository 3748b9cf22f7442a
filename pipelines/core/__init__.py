"""What every stage shares: settings, errors, the data contracts, storage and the lake catalog,
compute engines and devices, failpoints."""
