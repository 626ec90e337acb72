//! gRPC server reflection, v1 and v1alpha, from one index of every served file.
//!
//! tonic-reflection's service gives each version only its own reflection descriptors, and ends
//! the whole stream with NOT_FOUND at the first unknown symbol (a client then loses every
//! answer after it). This one answers from one index, so that both versions resolve every
//! symbol (each other's included), and answers a failed lookup in the stream, with an
//! `ErrorResponse`, as the protocol asks. Files are served under the names they were compiled
//! with (`google/rpc/status.proto`, `google/protobuf/timestamp.proto`), so a client holding
//! the same files finds no duplicate symbol.

use std::{
    collections::{HashMap, HashSet},
    pin::Pin,
    sync::Arc,
};

use futures::{Stream, StreamExt};
use prost::Message;
use prost_types::{DescriptorProto, FileDescriptorProto, FileDescriptorSet};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Code, Request, Response, Status, Streaming};
use tonic_reflection::pb::{v1, v1alpha};
use v1::{server_reflection_request::MessageRequest, server_reflection_response::MessageResponse};

/// Every file of the served descriptor sets, and where each symbol is declared.
struct Index {
    /// Encoded FileDescriptorProtos by file name.
    files: HashMap<String, Vec<u8>>,
    /// Each file's direct dependencies, in declaration order.
    deps: HashMap<String, Vec<String>>,
    /// Fully qualified symbol (no leading dot) -> the file declaring it.
    symbols: HashMap<String, String>,
    /// (extended message, field number) -> the file declaring the extension.
    extensions: HashMap<(String, i32), String>,
    /// Services listed by ListServices.
    services: Vec<String>,
}

/// The reflection services over one index.
#[derive(Clone)]
pub struct Reflection {
    index: Arc<Index>,
}

/// Answers queued per stream before the server stops reading the client's requests.
const STREAM_BUFFER: usize = 16;

impl Reflection {
    /// An index of `sets` (encoded FileDescriptorSets; the first file of a name wins) listing
    /// `services`. A set that does not decode is a build error of the server, hence the panic.
    pub fn new(sets: &[&[u8]], services: &[&str]) -> Self {
        let mut index = Index {
            files: HashMap::new(),
            deps: HashMap::new(),
            symbols: HashMap::new(),
            extensions: HashMap::new(),
            services: services.iter().map(|s| (*s).to_owned()).collect(),
        };
        for set in sets {
            let set = FileDescriptorSet::decode(*set).expect("an embedded descriptor set decodes");
            for file in set.file {
                index.add(file);
            }
        }
        index.services.sort();
        index.services.dedup();
        Self { index: Arc::new(index) }
    }

    /// The v1 service (`grpc.reflection.v1.ServerReflection`).
    pub fn v1(&self) -> v1::server_reflection_server::ServerReflectionServer<Self> {
        v1::server_reflection_server::ServerReflectionServer::new(self.clone())
    }

    /// The v1alpha service (`grpc.reflection.v1alpha.ServerReflection`), for grpcurl 1.8 and
    /// older clients.
    pub fn v1alpha(&self) -> v1alpha::server_reflection_server::ServerReflectionServer<Self> {
        v1alpha::server_reflection_server::ServerReflectionServer::new(self.clone())
    }

    /// Answers one request. `sent`: the files this stream has had, which are not sent again as
    /// dependencies (the protocol allows it; the asked-for file itself always comes).
    fn answer(&self, req: v1::ServerReflectionRequest, sent: &mut HashSet<String>) -> v1::ServerReflectionResponse {
        let ix = &self.index;
        let message = match &req.message_request {
            None => Err((Code::InvalidArgument, "the request names no query".to_owned())),
            Some(MessageRequest::ListServices(_)) => {
                Ok(MessageResponse::ListServicesResponse(v1::ListServiceResponse {
                    service: ix.services.iter().map(|name| v1::ServiceResponse { name: name.clone() }).collect(),
                }))
            }
            Some(MessageRequest::FileByFilename(name)) => match ix.files.contains_key(name) {
                true => Ok(self.files_from(name, sent)),
                false => Err((Code::NotFound, format!("no file named {}", quoted(name)))),
            },
            Some(MessageRequest::FileContainingSymbol(symbol)) => {
                match ix.symbols.get(symbol.trim_start_matches('.')) {
                    Some(file) => Ok(self.files_from(file, sent)),
                    None => Err((Code::NotFound, format!("no symbol named {}", quoted(symbol)))),
                }
            }
            Some(MessageRequest::FileContainingExtension(ext)) => {
                let key = (ext.containing_type.trim_start_matches('.').to_owned(), ext.extension_number);
                match ix.extensions.get(&key) {
                    Some(file) => Ok(self.files_from(file, sent)),
                    None => Err((
                        Code::NotFound,
                        format!("no extension {} of {}", ext.extension_number, quoted(&ext.containing_type)),
                    )),
                }
            }
            Some(MessageRequest::AllExtensionNumbersOfType(ty)) => {
                let ty = ty.trim_start_matches('.');
                if ix.symbols.contains_key(ty) {
                    let mut numbers: Vec<i32> =
                        ix.extensions.keys().filter(|(of, _)| of == ty).map(|(_, number)| *number).collect();
                    numbers.sort_unstable();
                    Ok(MessageResponse::AllExtensionNumbersResponse(v1::ExtensionNumberResponse {
                        base_type_name: ty.to_owned(),
                        extension_number: numbers,
                    }))
                } else {
                    Err((Code::NotFound, format!("no message type named {}", quoted(ty))))
                }
            }
        };
        let message = message.unwrap_or_else(|(code, error_message)| {
            MessageResponse::ErrorResponse(v1::ErrorResponse { error_code: code as i32, error_message })
        });
        v1::ServerReflectionResponse {
            valid_host: req.host.clone(),
            original_request: Some(req),
            message_response: Some(message),
        }
    }

    /// `name` and every file it depends on, transitively, that this stream has not had yet.
    fn files_from(&self, name: &str, sent: &mut HashSet<String>) -> MessageResponse {
        let ix = &self.index;
        let mut out = vec![ix.files[name].clone()];
        sent.insert(name.to_owned());
        let mut todo: Vec<&str> = ix.deps.get(name).map(|d| d.iter().map(String::as_str).collect()).unwrap_or_default();
        while let Some(dep) = todo.pop() {
            if sent.contains(dep) {
                continue;
            }
            // A dependency the index lacks is the client's to resolve; there is nothing to send.
            if let Some(bytes) = ix.files.get(dep) {
                out.push(bytes.clone());
                sent.insert(dep.to_owned());
                todo.extend(ix.deps.get(dep).into_iter().flatten().map(String::as_str));
            }
        }
        MessageResponse::FileDescriptorResponse(v1::FileDescriptorResponse { file_descriptor_proto: out })
    }

    /// Runs one reflection stream: each request answered in order, until the client ends it.
    fn serve<Req, Resp>(
        &self,
        mut requests: Streaming<Req>,
        into_v1: fn(Req) -> v1::ServerReflectionRequest,
        from_v1: fn(v1::ServerReflectionResponse) -> Resp,
    ) -> ReceiverStream<Result<Resp, Status>>
    where
        Req: Send + 'static,
        Resp: Send + 'static,
    {
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        let this = self.clone();
        tokio::spawn(async move {
            let mut sent = HashSet::new();
            while let Some(Ok(req)) = requests.next().await {
                let answer = from_v1(this.answer(into_v1(req), &mut sent));
                if tx.send(Ok(answer)).await.is_err() {
                    return;
                }
            }
        });
        ReceiverStream::new(rx)
    }
}

impl Index {
    fn add(&mut self, file: FileDescriptorProto) {
        let name = file.name().to_owned();
        if self.files.contains_key(&name) {
            return;
        }
        let package = file.package();
        let scoped = |n: &str| if package.is_empty() { n.to_owned() } else { format!("{package}.{n}") };
        let mut symbols = Vec::new();
        for service in &file.service {
            let full = scoped(service.name());
            symbols.extend(service.method.iter().map(|m| format!("{full}.{}", m.name())));
            symbols.push(full);
        }
        for message in &file.message_type {
            message_symbols(&scoped(message.name()), message, &mut symbols, &mut self.extensions, &name);
        }
        for e in &file.enum_type {
            // Enum values are scoped beside their enum, not inside it (protobuf's C++ scoping).
            symbols.extend(e.value.iter().map(|v| scoped(v.name())));
            symbols.push(scoped(e.name()));
        }
        for ext in &file.extension {
            symbols.push(scoped(ext.name()));
            self.extensions.insert((ext.extendee().trim_start_matches('.').to_owned(), ext.number()), name.clone());
        }
        for symbol in symbols {
            self.symbols.entry(symbol).or_insert_with(|| name.clone());
        }
        self.deps.insert(name.clone(), file.dependency.clone());
        self.files.insert(name, file.encode_to_vec());
    }
}

/// A message's symbols: itself, its fields and oneofs, nested types and enums, extensions.
fn message_symbols(
    full: &str,
    m: &DescriptorProto,
    out: &mut Vec<String>,
    extensions: &mut HashMap<(String, i32), String>,
    file: &str,
) {
    out.push(full.to_owned());
    out.extend(m.field.iter().map(|f| format!("{full}.{}", f.name())));
    out.extend(m.oneof_decl.iter().map(|o| format!("{full}.{}", o.name())));
    for nested in &m.nested_type {
        message_symbols(&format!("{full}.{}", nested.name()), nested, out, extensions, file);
    }
    for e in &m.enum_type {
        out.extend(e.value.iter().map(|v| format!("{full}.{}", v.name())));
        out.push(format!("{full}.{}", e.name()));
    }
    for ext in &m.extension {
        out.push(format!("{full}.{}", ext.name()));
        extensions.insert((ext.extendee().trim_start_matches('.').to_owned(), ext.number()), file.to_owned());
    }
}

/// A caller's name in an error message: quoted, escaped, and cut short.
fn quoted(name: &str) -> String {
    let short: String = name.chars().take(200).collect();
    format!("{short:?}")
}

/// v1alpha's messages are v1's, field for field (the same file under another package): one
/// encodes into the other.
fn recode<A: Message, B: Message + Default>(a: A) -> B {
    B::decode(a.encode_to_vec().as_slice()).expect("v1 and v1alpha reflection messages share their wire format")
}

type Answers<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

#[tonic::async_trait]
impl v1::server_reflection_server::ServerReflection for Reflection {
    type ServerReflectionInfoStream = Answers<v1::ServerReflectionResponse>;

    async fn server_reflection_info(
        &self,
        req: Request<Streaming<v1::ServerReflectionRequest>>,
    ) -> Result<Response<Self::ServerReflectionInfoStream>, Status> {
        Ok(Response::new(Box::pin(self.serve(req.into_inner(), |r| r, |r| r))))
    }
}

#[tonic::async_trait]
impl v1alpha::server_reflection_server::ServerReflection for Reflection {
    type ServerReflectionInfoStream = Answers<v1alpha::ServerReflectionResponse>;

    async fn server_reflection_info(
        &self,
        req: Request<Streaming<v1alpha::ServerReflectionRequest>>,
    ) -> Result<Response<Self::ServerReflectionInfoStream>, Status> {
        Ok(Response::new(Box::pin(self.serve(req.into_inner(), recode, recode))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index() -> Reflection {
        Reflection::new(
            &[tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET, tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET],
            &["grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection"],
        )
    }

    fn ask(r: &Reflection, query: MessageRequest, sent: &mut HashSet<String>) -> MessageResponse {
        let req = v1::ServerReflectionRequest { host: String::new(), message_request: Some(query) };
        r.answer(req, sent).message_response.unwrap()
    }

    fn file_names(answer: MessageResponse) -> Vec<String> {
        let MessageResponse::FileDescriptorResponse(files) = answer else { panic!("not files: {answer:?}") };
        files
            .file_descriptor_proto
            .iter()
            .map(|b| FileDescriptorProto::decode(b.as_slice()).unwrap().name().to_owned())
            .collect()
    }

    #[test]
    fn both_versions_symbols_resolve_from_one_index() {
        let r = index();
        for symbol in [
            "grpc.reflection.v1.ServerReflection",
            "grpc.reflection.v1alpha.ServerReflection",
            ".grpc.reflection.v1.ServerReflection.ServerReflectionInfo",
            "grpc.reflection.v1alpha.ErrorResponse.error_code",
        ] {
            let answer = ask(&r, MessageRequest::FileContainingSymbol(symbol.into()), &mut HashSet::new());
            assert_eq!(file_names(answer).len(), 1, "{symbol}");
        }
    }

    #[test]
    fn an_unknown_symbol_is_an_error_response_in_the_stream_not_the_end_of_it() {
        let r = index();
        let answer = ask(&r, MessageRequest::FileContainingSymbol("no.such.Thing\n".into()), &mut HashSet::new());
        let MessageResponse::ErrorResponse(e) = answer else { panic!("{answer:?}") };
        assert_eq!(e.error_code, Code::NotFound as i32);
        assert_eq!(e.error_message, r#"no symbol named "no.such.Thing\n""#);
    }

    #[test]
    fn list_services_names_every_listed_service_once() {
        let r = index();
        let MessageResponse::ListServicesResponse(list) =
            ask(&r, MessageRequest::ListServices(String::new()), &mut HashSet::new())
        else {
            panic!()
        };
        let names: Vec<_> = list.service.into_iter().map(|s| s.name).collect();
        assert_eq!(names, ["grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection"]);
    }

    #[test]
    fn a_file_comes_with_its_dependencies_once_per_stream() {
        let set = FileDescriptorSet {
            file: vec![
                FileDescriptorProto {
                    name: Some("a.proto".into()),
                    package: Some("p".into()),
                    dependency: vec!["b.proto".into()],
                    ..Default::default()
                },
                FileDescriptorProto {
                    name: Some("b.proto".into()),
                    package: Some("p".into()),
                    message_type: vec![DescriptorProto { name: Some("B".into()), ..Default::default() }],
                    ..Default::default()
                },
            ],
        }
        .encode_to_vec();
        let r = Reflection::new(&[&set], &[]);
        let mut sent = HashSet::new();
        assert_eq!(
            file_names(ask(&r, MessageRequest::FileByFilename("a.proto".into()), &mut sent)),
            ["a.proto", "b.proto"]
        );
        assert_eq!(file_names(ask(&r, MessageRequest::FileByFilename("a.proto".into()), &mut sent)), ["a.proto"]);
        assert_eq!(file_names(ask(&r, MessageRequest::FileContainingSymbol("p.B".into()), &mut sent)), ["b.proto"]);
    }
}
