"""pin2vec's Apache Beam pipeline: engagement logs -> validated events -> per-user sessions."""
