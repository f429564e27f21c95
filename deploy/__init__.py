"""Deployment files: the nginx template for N replicas and its renderer (see README, "Deployment")."""
