//! A task list written as for the Python LoadDensity (spec §2.1) runs unchanged, with the
//! Python version's meaning (the shared check in
//! [`load_density_testkit::conformance::assert_python_http_task_list_runs_unchanged`]).

use load_density_testkit::conformance::assert_python_http_task_list_runs_unchanged;

// Name the crate so its registration is linked in.
use load_density_fast_http as _;

#[tokio::test]
async fn a_python_task_list_runs_unchanged() {
    assert_python_http_task_list_runs_unchanged("fast_http_user").await;
}
