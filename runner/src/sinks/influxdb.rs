//! The InfluxDB line-protocol sink (`LD_start_influxdb_sink`, `LD_stop_influxdb_sink`).
