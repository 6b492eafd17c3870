"""Articles in, ranked passages out: load, chunk, embed, store, retrieve."""
