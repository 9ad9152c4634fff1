"""Small utilities shared by every part of the project (device, seeding, images, runs)."""
