"""Library of the nightly recommendation pipeline: pure logic, no storage or config access."""
