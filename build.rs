//! Turns `proto/` into Rust: prost message types, tonic clients and servers, the
//! encoded descriptor set served by gRPC reflection, and, for every service, the
//! AMQP RPC stubs (a client implementing the tonic service trait and a server
//! that dispatches queue messages to any implementation of that trait).
//!
//! protox compiles the `.proto` files in pure Rust, so no system `protoc` is needed.
//! The nameko adapters (`<name>_nameko`) are written by `build/nameko/`, from
//! the `airbridge.nameko.v1` options in `proto/`.

#[path = "build/nameko/mod.rs"]
mod nameko;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::{env, fs, io};

use heck::ToSnakeCase;
use prost_build::{Service, ServiceGenerator};

const PROTO_ROOT: &str = "proto";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed={PROTO_ROOT}");
    println!("cargo:rerun-if-changed=build");
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);

    let mut files = Vec::new();
    find_protos(Path::new(PROTO_ROOT), &mut files)?;
    files.sort();

    let mut compiler = protox::Compiler::new([PROTO_ROOT])?;
    compiler.include_source_info(true).include_imports(true);
    compiler.open_files(&files)?;
    fs::write(
        out_dir.join("descriptor.bin"),
        compiler.encode_file_descriptor_set(),
    )?;

    let mut config = prost_build::Config::new();
    config
        .include_file("proto.rs")
        .service_generator(Box::new(Generators(vec![
            tonic_prost_build::configure().service_generator(),
            Box::new(AmqpGenerator),
            Box::new(nameko::NamekoGenerator::new(compiler.descriptor_pool())),
        ])));
    config.compile_fds(compiler.file_descriptor_set())?;
    Ok(())
}

fn find_protos(dir: &Path, found: &mut Vec<PathBuf>) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            find_protos(&path, found)?;
        } else if path.extension().is_some_and(|ext| ext == "proto") {
            found.push(path);
        }
    }
    Ok(())
}

/// Runs service generators one after the other into the same module.
struct Generators(Vec<Box<dyn ServiceGenerator>>);

impl ServiceGenerator for Generators {
    fn generate(&mut self, service: Service, buf: &mut String) {
        for generator in &mut self.0 {
            generator.generate(service.clone(), buf);
        }
    }

    fn finalize(&mut self, buf: &mut String) {
        for generator in &mut self.0 {
            generator.finalize(buf);
        }
    }

    fn finalize_package(&mut self, package: &str, buf: &mut String) {
        for generator in &mut self.0 {
            generator.finalize_package(package, buf);
        }
    }
}

/// Writes the AMQP RPC stubs of one service: a `<name>_amqp` module holding
/// `<Name>AmqpClient` and `<Name>AmqpServer`. The transport itself lives in
/// `airbridge::rpc`; the stubs only name methods and (de)serialise messages.
struct AmqpGenerator;

impl ServiceGenerator for AmqpGenerator {
    fn generate(&mut self, service: Service, buf: &mut String) {
        let name = &service.name;
        let full_name = format!("{}.{}", service.package, service.proto_name);
        let module = format!("{}_amqp", name.to_snake_case());
        let server_module = format!("{}_server", name.to_snake_case());
        let trait_path = format!("super::{server_module}::{name}");

        if let Some(method) = service
            .methods
            .iter()
            .find(|m| m.client_streaming || m.server_streaming)
        {
            panic!(
                "{full_name}/{}: streaming methods cannot be carried over AMQP RPC; only unary methods are supported",
                method.proto_name
            );
        }

        let mut client_methods = String::new();
        let mut dispatch_arms = String::new();
        let mut method_names = Vec::new();
        for method in &service.methods {
            let rust_name = &method.name;
            let proto_name = &method.proto_name;
            let input = rust_type(&method.input_type);
            let output = rust_type(&method.output_type);
            method_names.push(format!("{proto_name:?}"));
            write!(
                client_methods,
                r#"
        async fn {rust_name}(
            &self,
            request: tonic::Request<{input}>,
        ) -> std::result::Result<tonic::Response<{output}>, tonic::Status> {{
            self.rpc.unary(SERVICE_NAME, {proto_name:?}, request).await
        }}
"#
            )
            .unwrap();
            write!(
                dispatch_arms,
                r#"
                {proto_name:?} => {{
                    let request = call.decode::<{input}>()?;
                    let response = self.inner.{rust_name}(request).await?;
                    Ok(crate::rpc::encode_response(response))
                }}"#
            )
            .unwrap();
        }
        let method_names = method_names.join(", ");

        write!(
            buf,
            r#"
/// AMQP RPC stubs for `{full_name}`, generated from its `.proto` file.
pub mod {module} {{
    /// The fully qualified service name; also the name of its AMQP queue.
    pub const SERVICE_NAME: &str = "{full_name}";
    /// The service's methods, as carried in a request's `type` property.
    pub const METHODS: &[&str] = &[{method_names}];

    /// Calls `{full_name}` over AMQP RPC.
    ///
    /// It implements the tonic service trait, so it can be mounted straight into a
    /// tonic server or called like any other implementation.
    #[derive(Clone, Debug)]
    pub struct {name}AmqpClient {{
        rpc: crate::rpc::RpcClient,
    }}

    impl {name}AmqpClient {{
        /// Sends calls through `rpc`, which may be shared with other clients.
        pub fn new(rpc: crate::rpc::RpcClient) -> Self {{
            Self {{ rpc }}
        }}
    }}

    #[tonic::async_trait]
    impl {trait_path} for {name}AmqpClient {{{client_methods}    }}

    /// Serves `{full_name}` from its AMQP queue with any implementation of the
    /// service trait; hand it to `airbridge::rpc::serve` (and, for a service
    /// with a nameko name, to `airbridge::nameko::serve` too).
    #[derive(Debug)]
    pub struct {name}AmqpServer<T> {{
        /// Also read by the server's nameko side (`<name>_nameko`).
        pub(crate) inner: std::sync::Arc<T>,
    }}

    impl<T> {name}AmqpServer<T> {{
        /// Dispatches calls to `inner`.
        pub fn new(inner: T) -> Self {{
            Self::from_arc(std::sync::Arc::new(inner))
        }}

        /// Dispatches calls to a shared `inner`.
        pub fn from_arc(inner: std::sync::Arc<T>) -> Self {{
            Self {{ inner }}
        }}
    }}

    impl<T> Clone for {name}AmqpServer<T> {{
        fn clone(&self) -> Self {{
            Self {{ inner: self.inner.clone() }}
        }}
    }}

    #[tonic::async_trait]
    impl<T: {trait_path}> crate::rpc::Service for {name}AmqpServer<T> {{
        fn name(&self) -> &'static str {{
            SERVICE_NAME
        }}

        fn methods(&self) -> &'static [&'static str] {{
            METHODS
        }}

        async fn call(
            &self,
            call: crate::rpc::IncomingCall,
        ) -> std::result::Result<bytes::Bytes, crate::rpc::CallError> {{
            match call.method() {{{dispatch_arms}
                _ => Err(call.unknown_method()),
            }}
        }}
    }}
}}
"#
        )
        .unwrap();
    }
}

/// The path of a message type as seen from inside the generated stub module.
fn rust_type(ty: &str) -> String {
    if ty == "()" || ty.starts_with("::") {
        ty.to_owned()
    } else {
        format!("super::{ty}")
    }
}
