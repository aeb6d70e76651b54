"""Tests of the Textual front end, on real recorded runs of the shipped scenarios."""
