"""Competition formats: SpaceNet building CSVs, RLE masks (Kaggle clouds), xBD label JSON."""
