"""Pieces shared by the agents: action forms (``actions``), saving (``io``), the step loop (``stepping``)."""
