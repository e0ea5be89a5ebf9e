"""Handcrafted baselines of the papers' tables: U-nets (2D/3D, depth D, initial filters IF) and a
ResNet18-style QC network, built from config entries in ``search.baselines.registry``."""
