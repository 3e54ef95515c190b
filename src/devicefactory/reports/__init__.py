"""Reports over the factory's records: anomalies (SPEC §13), each with its evidence."""
