//! OpenAPI import: a small OpenAPI 3 document describing testkit routes becomes tasks that run
//! against a testkit server without a failure; bad documents are clear errors.

use load_density::core::test_record_instance;
use load_density::executor::{self, error_chain};
use load_density::import::openapi;
use load_density_testkit::HttpTarget;
use serde_json::{json, Value};

fn spec(port: u16) -> String {
    format!(
        r##"openapi: 3.0.3
info: {{title: testkit, version: "1"}}
servers:
  - url: http://{{host}}:{{port}}/
    variables:
      host: {{default: 127.0.0.1}}
      port: {{default: "{port}"}}
paths:
  /anything/items/{{itemId}}:
    parameters:
      - name: itemId
        in: path
        required: true
        schema: {{type: integer}}
        example: 42
    get:
      operationId: getItem
      responses: {{"200": {{description: ok}}}}
    put:
      operationId: putItem
      requestBody:
        content:
          application/json:
            schema: {{$ref: '#/components/schemas/Item'}}
      responses: {{"200": {{description: ok}}, "404": {{description: missing}}}}
  /post:
    post:
      requestBody:
        content:
          application/json:
            example: {{name: widget, tags: [a, b]}}
      responses: {{"201": {{description: created}}, "200": {{description: ok}}}}
  /get:
    get:
      operationId: search
      parameters:
        - {{name: q, in: query, required: true, schema: {{type: string, example: blue shoes}}}}
        - {{name: X-Trace, in: header, required: true, schema: {{type: string, format: uuid}}}}
        - {{name: page, in: query, schema: {{type: integer}}}}
      responses: {{"200": {{description: ok}}}}
  /status/{{code}}:
    get:
      parameters: [{{name: code, in: path, required: true, schema: {{type: integer, enum: [204]}}}}]
      responses: {{"204": {{description: empty}}}}
components:
  schemas:
    Item:
      type: object
      required: [id, name]
      properties:
        id: {{type: integer, minimum: 7}}
        name: {{type: string}}
        email: {{type: string, format: email}}
        price: {{type: number}}
        tags: {{type: array, items: {{type: string, enum: [new, sale]}}}}
"##
    )
}

#[test]
fn operations_become_tasks_that_run_against_the_server() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new()?;
    let target = runtime.block_on(HttpTarget::start())?;
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("api.yaml");
    std::fs::write(&file, spec(target.addr().port()))?;
    let document = openapi::load_openapi(&file)?;
    let tasks = openapi::openapi_to_tasks(&document, None)?;
    let base = target.base_url();
    let names: Vec<&str> = tasks.iter().filter_map(|t| t["name"].as_str()).collect();
    assert_eq!(
        names,
        [
            "getItem",
            "putItem",
            "POST /post",
            "search",
            "GET /status/{code}"
        ]
    );
    assert_eq!(
        tasks[0]["request_url"],
        format!("{base}/anything/items/${{var.itemId}}")
    );
    assert_eq!(
        tasks[1]["json"],
        json!({"id": 7, "name": "string", "email": "user@example.com", "price": 1.5,
               "tags": ["new"]})
    );
    assert_eq!(
        tasks[1]["assertions"],
        json!([{"type": "status_code", "value": 200}])
    );
    assert_eq!(
        tasks[2]["json"],
        json!({"name": "widget", "tags": ["a", "b"]})
    );
    assert_eq!(
        tasks[3]["request_url"],
        format!("{base}/get?q=blue%20shoes")
    );
    assert_eq!(
        tasks[3]["headers"]["X-Trace"],
        "00000000-0000-4000-8000-000000000000"
    );
    assert_eq!(tasks[4]["assertions"][0]["value"], 204);
    assert_eq!(
        openapi::openapi_variables(&document)?,
        json!({"itemId": 42, "code": 204})
            .as_object()
            .cloned()
            .unwrap_or_default()
    );

    let mut plan =
        openapi::openapi_to_action_json(&document, None, "fast_http_user", 2, 10.0, 1.0)?;
    plan["load_density"][0][1]["print_stats"] = json!(false);
    test_record_instance().clear_records();
    let results = executor::execute_document(&plan)?;
    let summary = match &results[0].outcome {
        Ok(summary) => summary.clone(),
        Err(error) => panic!("the run failed: {}", error_chain(error)),
    };
    let requests = summary["totals"]["requests"].as_u64().unwrap_or_default();
    assert!(requests >= 5, "{summary}");
    assert_eq!(
        summary["totals"]["failures"],
        0,
        "{:?}",
        test_record_instance().stats().errors()
    );
    assert_eq!(target.served(), requests);
    for path in ["/anything/items/42", "/post", "/get", "/status/204"] {
        assert!(
            target.served_path(path) > 0,
            "{path}: {:?}",
            target.path_counts()
        );
    }
    runtime.block_on(target.shutdown());
    Ok(())
}

#[test]
fn bad_documents_are_clear_errors() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let broken = dir.path().join("broken.yaml");
    std::fs::write(&broken, "openapi: 3.0.0\npaths: [\n")?;
    let error = openapi::load_openapi(&broken).expect_err("not YAML");
    let text = error.to_string();
    assert!(
        text.contains("broken.yaml: OpenAPI YAML does not parse"),
        "{text}"
    );
    assert!(text.contains("line"), "{text}");

    let swagger = dir.path().join("swagger.json");
    std::fs::write(&swagger, json!({"swagger": "2.0", "paths": {}}).to_string())?;
    let text = openapi::load_openapi(&swagger)
        .expect_err("swagger")
        .to_string();
    assert!(text.contains("Swagger 2.0"), "{text}");

    let dangling: Value = json!({"openapi": "3.1.0", "paths": {"/x": {"post": {
        "requestBody": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Nope"}}}}
    }}}});
    let text = openapi::openapi_to_tasks(&dangling, None)
        .expect_err("dangling")
        .to_string();
    assert_eq!(
        text,
        "paths./x.post.requestBody.content.application/json.schema: $ref \"#/components/schemas/Nope\" not found"
    );
    let results = executor::execute_document(&json!([
        ["LD_openapi_to_tasks", {"spec": broken.display().to_string()}],
        ["LD_openapi_to_tasks", {"spec": {"openapi": "3.0.0", "paths": {"/": {"get": {}}}},
                                 "base_url": "http://127.0.0.1:1/"}]
    ]))?;
    match &results[0].outcome {
        Err(error) => assert!(error_chain(error).starts_with("LD_openapi_to_tasks: ")),
        Ok(value) => panic!("parsed a broken file: {value}"),
    }
    match &results[1].outcome {
        Ok(tasks) => assert_eq!(
            tasks,
            &json!([{"method": "get", "request_url": "http://127.0.0.1:1/", "name": "GET /"}])
        ),
        Err(error) => panic!("{}", error_chain(error)),
    }
    Ok(())
}
