"""Adapters to vendor SDKs (optional extras), kept out of ``core``: they own a transport.

Each module imports its SDK only when an adapter is built, so the stack imports and runs
without the extra; a missing SDK raises an error that names the extra to install.
"""
