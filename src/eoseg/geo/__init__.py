"""Raster and vector I/O: windows, alignment, nodata, rasterize, polygonize, COG writing.

This layer knows nothing about torch.
"""
