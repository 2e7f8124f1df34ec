"""Streamlit helpers of the hyperrep explorer app: session state, cached artefact loaders, job panels and figures.

The library (``hyperrep``) never imports this package or streamlit; pages call the library and submit jobs.
"""
