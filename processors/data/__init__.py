"""Data files of the enrichment processors (a package so that wheels include them)."""
