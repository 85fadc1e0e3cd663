"""Preference optimisation (DPO-family losses, pair construction, the preference trainer): empty until
AdaViP (arXiv 2504.15619, notebook 06) lands here."""
