//! Server reflection (`grpc.reflection.v1`, falling back to `v1alpha`): the descriptors of the
//! services a group calls, fetched once at prepare time.

use std::collections::{BTreeMap, BTreeSet};

use prost::Message as _;
use prost_reflect::DescriptorPool;
use prost_types::FileDescriptorProto;
use tonic::Status;

use crate::channel::{Endpoint, H2Service};
use crate::response::code_name;

/// What we ask a reflection service.
#[derive(Debug, Clone)]
enum Question {
    ListServices,
    FileContainingSymbol(String),
    FileByFilename(String),
}

/// What it answers.
#[derive(Debug)]
enum Answer {
    Services(Vec<String>),
    Files(Vec<Vec<u8>>),
    Error(i32, String),
    Other,
}

/// One call to the reflection service, for a generated client module (`v1` or `v1alpha`).
macro_rules! ask_fn {
    ($name:ident, $($module:ident)::+) => {
        async fn $name(endpoint: &Endpoint, send: &h2::client::SendRequest<bytes::Bytes>, question: &Question) -> Result<Answer, Status> {
            use $($module)::+ as pb;
            use pb::server_reflection_request::MessageRequest;
            use pb::server_reflection_response::MessageResponse;
            let request = pb::ServerReflectionRequest {
                host: endpoint.target.host.clone(),
                message_request: Some(match question {
                    Question::ListServices => MessageRequest::ListServices(String::new()),
                    Question::FileContainingSymbol(symbol) => {
                        MessageRequest::FileContainingSymbol(symbol.clone())
                    }
                    Question::FileByFilename(name) => MessageRequest::FileByFilename(name.clone()),
                }),
            };
            let mut client = pb::server_reflection_client::ServerReflectionClient::with_origin(
                H2Service(send.clone()),
                endpoint.origin.clone(),
            );
            let response = client
                .server_reflection_info(futures_util::stream::iter([request]))
                .await?;
            let mut stream = response.into_inner();
            let message = stream
                .message()
                .await?
                .ok_or_else(|| Status::internal("the reflection service sent no answer"))?;
            Ok(match message.message_response {
                Some(MessageResponse::ListServicesResponse(list)) => {
                    Answer::Services(list.service.into_iter().map(|s| s.name).collect())
                }
                Some(MessageResponse::FileDescriptorResponse(files)) => {
                    Answer::Files(files.file_descriptor_proto)
                }
                Some(MessageResponse::ErrorResponse(error)) => {
                    Answer::Error(error.error_code, error.error_message)
                }
                _ => Answer::Other,
            })
        }
    };
}

ask_fn!(ask_v1, tonic_reflection::pb::v1);
ask_fn!(ask_v1alpha, tonic_reflection::pb::v1alpha);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Version {
    V1,
    V1Alpha,
}

struct Session<'a> {
    endpoint: &'a Endpoint,
    send: h2::client::SendRequest<bytes::Bytes>,
    version: Version,
}

impl Session<'_> {
    async fn ask(&self, question: &Question) -> Result<Answer, String> {
        let answer = match self.version {
            Version::V1 => ask_v1(self.endpoint, &self.send, question).await,
            Version::V1Alpha => ask_v1alpha(self.endpoint, &self.send, question).await,
        };
        answer.map_err(|status| status_text(&status))
    }
}

fn status_text(status: &Status) -> String {
    format!(
        "{}: {}",
        code_name(i32::from(status.code())),
        status.message()
    )
}

/// What reflection found on one server.
#[derive(Debug)]
pub(crate) struct Reflected {
    /// The files of the services asked for, with their imports.
    pub(crate) pool: DescriptorPool,
    /// Every service the server lists, sorted.
    pub(crate) services: Vec<String>,
}

/// Lists the server's services and fetches the files defining those of `wanted` it has (by
/// full or unambiguous short name), with their imports. Services it does not have are left out
/// (the caller reports them with the list).
pub(crate) async fn reflect(endpoint: &Endpoint, wanted: &[String]) -> Result<Reflected, String> {
    let send = endpoint
        .connect(None)
        .await
        .map_err(|e| format!("UNAVAILABLE: {e}"))?
        .send;
    let mut session = Session {
        endpoint,
        send,
        version: Version::V1,
    };
    let services = match session.ask(&Question::ListServices).await {
        Ok(answer) => answer,
        Err(_) => {
            // A server without v1 answers UNIMPLEMENTED: try v1alpha, and report its error.
            session.version = Version::V1Alpha;
            session
                .ask(&Question::ListServices)
                .await
                .map_err(|e| format!("server reflection (v1 and v1alpha): {e}"))?
        }
    };
    let mut services = match services {
        Answer::Services(names) => names,
        other => {
            return Err(format!(
                "server reflection: unexpected answer to list_services: {other:?}"
            ))
        }
    };
    services.sort_unstable();

    let mut files: BTreeMap<String, FileDescriptorProto> = BTreeMap::new();
    let mut asked: BTreeSet<String> = BTreeSet::new();
    for name in wanted {
        let Some(full) = resolve_listed(&services, name) else {
            continue;
        };
        if !asked.insert(full.clone()) {
            continue;
        }
        let answer = session
            .ask(&Question::FileContainingSymbol(full.clone()))
            .await
            .map_err(|e| format!("server reflection: file containing {full}: {e}"))?;
        add_files(answer, &mut files, &format!("the file containing {full}"))?;
    }
    // Fetch the imports the server did not send along.
    loop {
        let missing: Vec<String> = files
            .values()
            .flat_map(|file| file.dependency.iter())
            .filter(|dep| !files.contains_key(*dep))
            .cloned()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        if missing.is_empty() {
            break;
        }
        for name in missing {
            let answer = session.ask(&Question::FileByFilename(name.clone())).await;
            let found = match answer {
                Ok(answer) => {
                    add_files(answer, &mut files, &name).is_ok() && files.contains_key(&name)
                }
                Err(_) => false,
            };
            if !found {
                // Servers often leave the well-known types out: prost-reflect ships them.
                let bundled = DescriptorPool::global()
                    .get_file_by_name(&name)
                    .map(|file| file.file_descriptor_proto().clone())
                    .ok_or_else(|| format!("server reflection: the server does not send {name:?}, an import of the service's files"))?;
                files.insert(name, bundled);
            }
        }
    }
    let mut pool = DescriptorPool::new();
    pool.add_file_descriptor_protos(files.into_values())
        .map_err(|e| format!("server reflection: the server's descriptors are invalid: {e}"))?;
    Ok(Reflected { pool, services })
}

/// A full service name from the server's list, for a full or unambiguous short name.
fn resolve_listed(services: &[String], name: &str) -> Option<String> {
    let name = name.trim_start_matches('.');
    if services.iter().any(|s| s == name) {
        return Some(name.to_owned());
    }
    let mut short = services
        .iter()
        .filter(|s| s.rsplit('.').next() == Some(name));
    match (short.next(), short.next()) {
        (Some(one), None) => Some(one.clone()),
        _ => None,
    }
}

fn add_files(
    answer: Answer,
    files: &mut BTreeMap<String, FileDescriptorProto>,
    what: &str,
) -> Result<(), String> {
    match answer {
        Answer::Files(encoded) => {
            for bytes in encoded {
                let file = FileDescriptorProto::decode(bytes.as_slice())
                    .map_err(|e| format!("server reflection: {what}: invalid descriptor: {e}"))?;
                files.entry(file.name().to_owned()).or_insert(file);
            }
            Ok(())
        }
        Answer::Error(code, message) => Err(format!(
            "server reflection: {what}: {}: {message}",
            code_name(code)
        )),
        other => Err(format!(
            "server reflection: {what}: unexpected answer {other:?}"
        )),
    }
}
