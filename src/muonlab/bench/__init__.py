"""The performance suite behind ``muonlab bench`` (SPEC §8); ``bench/*.py`` are thin wrappers.

Every benchmark measures muonlab against a baseline in the same process and reports
the ratio; none of them is a test (timings are never asserted).
"""
