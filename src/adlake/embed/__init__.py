"""Frame and audio embeddings: encoders behind one interface, a Ray Data job writing silver.embeddings."""
