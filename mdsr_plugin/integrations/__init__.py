"""Bridges to the analysis tools people already use: MDAnalysis and ASE."""
