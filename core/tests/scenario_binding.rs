//! The scenario starts a new task (and so a new CSV row) before each task it runs.

use std::sync::Arc;

use load_density_core::context::StopHandle;
use load_density_core::data::{DataSourceSpec, DataSources};
use load_density_core::scenario::Scenario;
use load_density_core::template::Template;
use load_density_core::variables::{UserVariables, Variables};
use load_density_core::{async_trait, EventBus, TaskList, UserContext, UserTemplate};
use serde_json::json;

struct Recorder {
    template: Template,
    seen: Vec<String>,
}

#[async_trait]
impl UserTemplate for Recorder {
    async fn run_task(&mut self, index: usize, ctx: &mut UserContext) {
        // Rendered twice in one task: both must read the same row.
        let first = self.template.render(ctx.variables()).into_owned();
        let second = self.template.render(ctx.variables()).into_owned();
        assert_eq!(first, second);
        self.seen.push(format!("{index}:{first}"));
    }
}

#[tokio::test]
async fn each_task_binds_a_fresh_row() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("ids.csv");
    std::fs::write(&path, "id\n1\n2\n3\n").expect("write");
    let data = Arc::new(DataSources::open([DataSourceSpec::new("ids", &path)]).expect("open"));
    let tasks = TaskList::from_json(&json!([{}, {}])).expect("tasks");
    let scenario = Scenario::new(&tasks).expect("scenario");
    let stop = StopHandle::new();
    let mut ctx = UserContext::new(
        7,
        Arc::new(EventBus::new(1)),
        UserVariables::with_data(Arc::new(Variables::new()), data, 7),
        stop.signal(),
    );
    let mut user = Recorder {
        template: Template::parse("${csv.ids.id}"),
        seen: Vec::new(),
    };
    scenario.run_iteration(&mut user, &mut ctx).await;
    scenario.run_iteration(&mut user, &mut ctx).await;
    assert_eq!(user.seen, ["0:1", "1:2", "0:3", "1:1"]);
}
