"""Content records in: normalising raw input, the file readers, and the importer."""
