"""Reporting: figures of one run (run_figures), and a sweep's comparison report: its runs
read back (collect), its figures (figures), and its tables and diagnoses (summary)."""
