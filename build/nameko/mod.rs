//! The nameko half of `build.rs`: reads the `airbridge.nameko.v1` options of
//! each service in `proto/` (proto/airbridge/nameko/v1/nameko.proto) and
//! writes its `<name>_nameko` module: `<Name>NamekoClient` (the tonic service
//! trait, called over nameko's protocol), `<Name>Via` (either client, chosen
//! at start-up), and the nameko side of `<Name>AmqpServer` (any
//! implementation of the trait, served to nameko callers too). The transport is `airbridge::nameko`;
//! what is generated here only moves fields between protobuf messages and
//! nameko's positional arguments and JSON results, as the options say.
//!
//! Every name an option gives is checked against the messages here, so a
//! mapping that does not fit its messages fails the build, not a call.

mod spec;

use std::fmt::Write as _;

use heck::ToSnakeCase;
use prost_build::Service;
use prost_reflect::{DescriptorPool, ExtensionDescriptor};

use self::spec::{Spec, place};

/// Reads the options and writes the modules.
pub struct NamekoGenerator {
    service_option: ExtensionDescriptor,
    method_option: ExtensionDescriptor,
    pool: DescriptorPool,
}

impl NamekoGenerator {
    pub fn new(pool: DescriptorPool) -> Self {
        let extension = |name: &str| {
            pool.get_extension_by_name(name)
                .unwrap_or_else(|| panic!("proto/ must define the option {name}"))
        };
        Self {
            service_option: extension("airbridge.nameko.v1.service"),
            method_option: extension("airbridge.nameko.v1.method"),
            pool,
        }
    }

    /// The `<name>_nameko` module of `service`, or nothing when the service
    /// has no nameko name.
    fn write(&self, service: &Service, buf: &mut String) {
        let full_name = format!("{}.{}", service.package, service.proto_name);
        let descriptor = self
            .pool
            .get_service_by_name(&full_name)
            .unwrap_or_else(|| panic!("{full_name} is not in the descriptor pool"));
        let options = descriptor.options();
        let nameko_name = options.get_extension(&self.service_option);
        let nameko_name = nameko_name.as_str().unwrap_or_default();
        if nameko_name.is_empty() {
            return;
        }
        let mut methods = Vec::new();
        for (method, proto) in service.methods.iter().zip(descriptor.methods()) {
            assert_eq!(
                method.proto_name,
                proto.name(),
                "{full_name}: methods out of order"
            );
            let options = proto.options();
            if !options.has_extension(&self.method_option) {
                methods.push((method, None));
                continue;
            }
            let option = options.get_extension(&self.method_option);
            let option = option.as_message().expect("the method option is a message");
            let what = format!("{full_name}/{}", method.proto_name);
            let spec = Spec::parse(&what, option, &proto.input(), &proto.output(), &method.name);
            methods.push((method, Some(spec)));
        }
        write_module(buf, service, &full_name, nameko_name, &methods);
    }
}

impl prost_build::ServiceGenerator for NamekoGenerator {
    fn generate(&mut self, service: Service, buf: &mut String) {
        self.write(&service, buf);
    }
}

/// Writes `<name>_nameko` for one service.
fn write_module(
    buf: &mut String,
    service: &Service,
    full_name: &str,
    nameko_name: &str,
    methods: &[(&prost_build::Method, Option<Spec>)],
) {
    let name = &service.name;
    let module = format!("{}_nameko", name.to_snake_case());
    let amqp_module = format!("{}_amqp", name.to_snake_case());
    let trait_path = format!("super::{}_server::{name}", name.to_snake_case());
    let mut table = String::new();
    let mut client_methods = String::new();
    let mut dispatch_arms = String::new();
    let mut via_methods = String::new();
    let mut index = 0;
    for (method, spec) in methods {
        let rust_name = &method.name;
        let input = super::rust_type(&method.input_type);
        let output = super::rust_type(&method.output_type);
        write!(
            via_methods,
            r#"
        async fn {rust_name}(
            &self,
            request: tonic::Request<{input}>,
        ) -> std::result::Result<tonic::Response<{output}>, tonic::Status> {{
            match self {{
                Self::Airbridge(client) => client.{rust_name}(request).await,
                Self::Nameko(client) => client.{rust_name}(request).await,
            }}
        }}
"#
        )
        .unwrap();
        let Some(spec) = spec else {
            write!(
                client_methods,
                r#"
        async fn {rust_name}(
            &self,
            _: tonic::Request<{input}>,
        ) -> std::result::Result<tonic::Response<{output}>, tonic::Status> {{
            Err(tonic::Status::unimplemented("{full_name}/{proto} has no nameko mapping"))
        }}
"#,
                proto = method.proto_name
            )
            .unwrap();
            continue;
        };
        let nameko = &spec.name;
        let params: Vec<String> = spec
            .params
            .iter()
            .map(|(param, _, field)| {
                format!("crate::nameko::Param {{ name: {param:?}, field: {field:?} }}")
            })
            .collect();
        writeln!(
            table,
            "        crate::nameko::Method {{ name: {nameko:?}, params: &[{}] }},",
            params.join(", ")
        )
        .unwrap();

        // Client: the request's fields as positional arguments; the result
        // (and the request, and constants) into the response.
        let args: Vec<String> = spec
            .params
            .iter()
            .map(|(_, field, _)| format!("crate::nameko::to_json(message.{field}.clone())"))
            .collect();
        let mut fill = String::new();
        if spec.not_found_is_null {
            fill.push_str(
                "            if result.is_null() {\n                return Err(crate::nameko::not_found(&self.service, METHOD));\n            }\n",
            );
        }
        if spec.result_keys.is_empty() {
            writeln!(
                fill,
                "            {} = crate::nameko::read(&self.service, METHOD, result)?;",
                place(&spec.result)
            )
            .unwrap();
        } else {
            writeln!(fill, "            let mut object = crate::nameko::JsonObject::read(&self.service, METHOD, result)?;").unwrap();
            for (key, field) in &spec.result_keys {
                writeln!(
                    fill,
                    "            {}.{field} = object.take({key:?})?;",
                    place(&spec.result)
                )
                .unwrap();
            }
        }
        for (target, field) in &spec.from_request {
            writeln!(
                fill,
                "            {} = message.{field}.clone();",
                place(target)
            )
            .unwrap();
        }
        for (field, value) in &spec.constants {
            writeln!(fill, "            response.{field} = {value};").unwrap();
        }
        write!(
            client_methods,
            r#"
        async fn {rust_name}(
            &self,
            request: tonic::Request<{input}>,
        ) -> std::result::Result<tonic::Response<{output}>, tonic::Status> {{
            const METHOD: &crate::nameko::Method = &METHODS[{index}];
            let (metadata, _, {message}) = request.into_parts();
            let result = self.rpc.call(&self.service, METHOD, &metadata, vec![{args}]).await?;
            let mut response = <{output}>::default();
{fill}            Ok(tonic::Response::new(response))
        }}
"#,
            args = args.join(", "),
            message = if spec.params.is_empty() && spec.from_request.is_empty() {
                "_"
            } else {
                "message"
            },
        )
        .unwrap();

        // Server: positional or keyword arguments into the request; the
        // response's result out.
        let mut take = String::new();
        for (i, (_, field, _)) in spec.params.iter().enumerate() {
            writeln!(
                take,
                "                    message.{field} = args.take({i})?;"
            )
            .unwrap();
        }
        let (args_binding, message_binding) = if spec.params.is_empty() {
            ("_", "message")
        } else {
            ("mut args", "mut message")
        };
        write!(
            dispatch_arms,
            r#"
                {nameko:?} => {{
                    let ({args_binding}, request) = call.bind(&METHODS[{index}])?;
                    let {message_binding} = <{input}>::default();
{take}                    let response = self.inner.{rust_name}(request.map(|()| message)).await;
                    Ok(match crate::nameko::answered(response, {null})? {{
                        Some(response) => {result},
                        None => crate::nameko::Json::Null,
                    }})
                }}"#,
            null = spec.not_found_is_null,
            result = spec.result_expr(),
        )
        .unwrap();
        index += 1;
    }

    write!(
        buf,
        r#"
/// The nameko adapters of `{full_name}`, generated from the
/// `airbridge.nameko.v1` options of its `.proto` file.
pub mod {module} {{
    /// The service's name in the original nameko system; its queue is
    /// `rpc-{nameko_name}`.
    pub const SERVICE_NAME: &str = "{nameko_name}";
    /// The methods nameko callers may call, with their parameters.
    pub const METHODS: &[crate::nameko::Method] = &[
{table}    ];

    /// Calls `{full_name}` as a nameko service: its methods go out as
    /// positional arguments, its results come back into the response.
    #[derive(Clone, Debug)]
    pub struct {name}NamekoClient {{
        rpc: crate::nameko::NamekoClient,
        service: std::sync::Arc<str>,
    }}

    impl {name}NamekoClient {{
        /// Calls the service by its usual nameko name.
        pub fn new(rpc: crate::nameko::NamekoClient) -> Self {{
            Self::named(rpc, SERVICE_NAME)
        }}

        /// Calls the service under another nameko name.
        pub fn named(rpc: crate::nameko::NamekoClient, service: &str) -> Self {{
            Self {{ rpc, service: service.into() }}
        }}

        /// The nameko name called.
        pub fn service(&self) -> &str {{
            &self.service
        }}
    }}

    #[tonic::async_trait]
    impl {trait_path} for {name}NamekoClient {{{client_methods}    }}

    /// The generated AMQP server serves nameko callers too: hand the same
    /// server to `airbridge::nameko::serve`.
    #[tonic::async_trait]
    impl<T: {trait_path}> crate::nameko::Service for super::{amqp_module}::{name}AmqpServer<T> {{
        fn methods(&self) -> &'static [crate::nameko::Method] {{
            METHODS
        }}

        async fn call(
            &self,
            call: crate::nameko::IncomingCall,
        ) -> std::result::Result<crate::nameko::Json, crate::nameko::CallError> {{
            match call.method() {{{dispatch_arms}
                _ => Err(call.unknown_method()),
            }}
        }}
    }}

    /// `{full_name}` over whichever protocol the backend speaks: ours, or
    /// nameko's (a backend not migrated yet).
    #[derive(Clone, Debug)]
    pub enum {name}Via {{
        /// Our AMQP RPC (protobuf).
        Airbridge(super::{amqp_module}::{name}AmqpClient),
        /// nameko's RPC (JSON).
        Nameko({name}NamekoClient),
    }}

    impl {name}Via {{
        /// The client `via` says: ours through `rpc`, or nameko's through
        /// `nameko`.
        pub fn new(
            via: &crate::config::Via,
            rpc: &crate::rpc::RpcClient,
            nameko: &crate::nameko::NamekoClient,
        ) -> Self {{
            match via {{
                crate::config::Via::Airbridge => {{
                    Self::Airbridge(super::{amqp_module}::{name}AmqpClient::new(rpc.clone()))
                }}
                crate::config::Via::Nameko(name) => Self::Nameko({name}NamekoClient::named(
                    nameko.clone(),
                    name.as_deref().unwrap_or(SERVICE_NAME),
                )),
            }}
        }}
    }}

    #[tonic::async_trait]
    impl {trait_path} for {name}Via {{{via_methods}    }}
}}
"#
    )
    .unwrap();
}
