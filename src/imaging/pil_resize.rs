//! PIL-exact antialiased bilinear resize (SAM preprocessing parity).
