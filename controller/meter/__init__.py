"""The grid-meter edge: register maps, presets, SunSpec discovery and the Modbus reader."""
