//! Binary masks: bounds, largest component, polygons.
