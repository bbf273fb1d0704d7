//! objects YAML (request helper)
