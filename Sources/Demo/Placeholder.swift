enum PlaceholderDemo {}
