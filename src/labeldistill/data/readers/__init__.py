"""Readers for each on-disk format; each returns validated uint8 images / int64 labels."""
