"""asyncjobs."""
