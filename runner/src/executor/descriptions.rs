//! One-line descriptions of the built-in commands, for `load-density commands`.

/// The description of built-in command `name` (empty when it has none here).
pub(super) fn builtin(name: &str) -> &'static str {
    match name {
        "LD_start_test" => "Runs a load test and returns its summary",
        "LD_register_variable" => "Registers one variable for later runs (${var.NAME})",
        "LD_register_variables" => "Registers several variables for later runs",
        "LD_register_csv_source" => "Registers a CSV data source (${csv.NAME.COLUMN})",
        "LD_register_csv_sources" => "Registers several CSV data sources",
        "LD_clear_resolver" => "Forgets every registered variable and CSV source",
        "LD_clear_records" => "Forgets every recorded request",
        "LD_summary" => "The summary of the recorded requests",
        "LD_generate_summary_report" => "Writes the summary as REPORT_NAME.json",
        "LD_execute_action" => "Runs an action document; returns its results in order",
        "LD_execute_files" => "Runs action files in order; returns each file's results",
        "LD_add_package_to_executor" => {
            "Not supported: crates add commands with register_command! instead"
        }
        "LD_start_socket_server" => "Serves the control socket until a client stops it (blocks)",
        _ => "",
    }
}
