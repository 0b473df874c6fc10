//! Security core of the log check (S16, S17): walks one file's syntax tree and reports every sensitive value that reaches a sink.
//!
//! A value is sensitive when it comes from the environment (`std::env::var` and friends), from
//! an HTTP header (`headers().get(..)`), from `expose_secret()`, or from a binding that is secret
//! by its name or its declared type (see `rules`). Simple `let`, `if let`, `match` and `for`
//! bindings carry that along inside a function when their value passes through value-keeping
//! adapters (`?`, `unwrap`, `to_string`, `clone`, ...). Inside a sink's argument any sensitive
//! part counts (`info!("{}", hash(&token))` is reported), except behind methods that only
//! measure a value (`len`, `is_empty`, ...). Values crossing function boundaries, struct fields
//! declared in other files and types inferred by the compiler are out of its sight: the name
//! rules and `clippy.toml`'s `disallowed-methods` are the other layers.

use std::collections::{HashMap, HashSet};

use proc_macro2::{Span, TokenStream, TokenTree};
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::visit::{self, Visit};
use syn::{Expr, Pat};

use super::macros::{self, Piece, Sink};
use super::rules;

/// A report before allow comments are applied: where, the lines an allow may sit on, and what.
pub(crate) struct RawFinding {
    pub(crate) line: usize,
    pub(crate) column: usize,
    /// Lines whose allow comment (on them or the line before) covers this finding: the value's
    /// own line and the line where the sink starts.
    pub(crate) anchors: Vec<usize>,
    pub(crate) message: String,
}

/// A sensitive value: what it is, in words a reader recognizes, and where it is.
#[derive(Clone)]
struct Leak {
    what: String,
    span: Span,
    /// How it got into the sink when that is not visible at `span`: a format string capture.
    via: String,
}

/// What a local binding is known to hold.
#[derive(Clone)]
enum Binding {
    /// Holds a sensitive value; the text says which.
    Sensitive(String),
    /// Holds something else, shadowing any sensitive binding of the same name.
    Clean,
    /// Declared as a number or a `bool`, which no credential is: not secret whatever its name
    /// (`tokens: usize`).
    Number,
}

/// Methods whose result keeps the value it is called on (`env::var(..)?.trim().to_string()`).
const VALUE_KEEPING_METHODS: &[&str] = &[
    "unwrap",
    "expect",
    "unwrap_or",
    "unwrap_or_default",
    "unwrap_or_else",
    "ok",
    "cloned",
    "copied",
    "to_string",
    "to_owned",
    "clone",
    "as_str",
    "to_str",
    "to_string_lossy",
    "into_string",
    "into",
    "as_ref",
    "as_deref",
    "as_bytes",
    "to_vec",
    "trim",
    "into_inner",
    "into_owned",
];

/// Methods that measure a value without showing it: `password.len()` is not the password.
const MEASURING_METHODS: &[&str] = &[
    "len", "is_empty", "is_some", "is_none", "is_ok", "is_err", "count",
];

/// Functions of `std::env` that read the environment.
const ENV_READERS: &[&str] = &["var", "var_os", "vars", "vars_os"];

/// Walks one parsed file.
pub(crate) struct FileWalk {
    findings: Vec<RawFinding>,
    /// Names brought in from `std::env` by `use`, so a bare `var("X")` is seen.
    env_imports: HashSet<String>,
    /// Fields this file declares with a secret type (`url: SecretString`).
    secret_fields: HashSet<String>,
    /// Constants and statics this file declares as numbers (`const SECRETS: usize = 50`).
    number_items: HashSet<String>,
    /// Local bindings, innermost block last.
    scopes: Vec<HashMap<String, Binding>>,
    /// The line where the sink being checked starts, an anchor for allow comments.
    sink_line: usize,
}

impl FileWalk {
    /// Walks a file and returns what it found.
    pub(crate) fn run(file: &syn::File) -> Vec<RawFinding> {
        let mut declarations = Declarations::default();
        declarations.visit_file(file);
        let mut walk = FileWalk {
            findings: Vec::new(),
            env_imports: declarations.env_imports,
            secret_fields: declarations.secret_fields,
            number_items: declarations.number_items,
            scopes: vec![HashMap::new()],
            sink_line: 0,
        };
        walk.visit_file(file);
        walk.findings
    }

    fn report(&mut self, leak: &Leak, sink: &str) {
        let start = leak.span.start();
        self.findings.push(RawFinding {
            line: start.line,
            column: start.column + 1,
            anchors: vec![start.line, self.sink_line],
            message: format!("{} reaches {sink}{}", leak.what, leak.via),
        });
    }

    // Bindings.

    fn lookup(&self, name: &str) -> Option<String> {
        let binding = self.scopes.iter().rev().find_map(|scope| scope.get(name));
        let number = match binding {
            Some(binding) => matches!(binding, Binding::Number),
            None => self.number_items.contains(name),
        };
        if number {
            return None;
        }
        if rules::is_secret_name(name) {
            return Some(format!("`{name}` (a secret-looking name)"));
        }
        match binding {
            Some(Binding::Sensitive(what)) => Some(format!("`{name}` (holds {what})")),
            _ => None,
        }
    }

    /// What a parameter or a typed `let` holds by its declared type alone.
    fn binding_of_type(ty: &syn::Type) -> Option<Binding> {
        if let Some(secret_type) = rules::secret_type_in(ty) {
            return Some(Binding::Sensitive(format!("a `{secret_type}`")));
        }
        rules::is_number_type(ty).then_some(Binding::Number)
    }

    /// Binds a pattern's names; those inside `Err(..)` hold the error, not the value.
    fn bind(&mut self, pat: &Pat, binding: &Binding) {
        let mut names = PatNames::default();
        names.visit_pat(pat);
        if let Some(scope) = self.scopes.last_mut() {
            for name in names.names {
                scope.insert(name, binding.clone());
            }
            for name in names.errors {
                scope.insert(name, Binding::Clean);
            }
        }
    }

    /// What a binding initialized from `expr` holds.
    fn binding_for(&self, pat: &Pat, expr: Option<&Expr>) -> Binding {
        if let Pat::Type(typed) = pat
            && let Some(binding) = Self::binding_of_type(&typed.ty)
        {
            return binding;
        }
        match expr.and_then(|expr| self.carried(expr)) {
            Some(leak) => Binding::Sensitive(leak.what),
            None => Binding::Clean,
        }
    }

    fn bind_params<'a>(&mut self, inputs: impl Iterator<Item = &'a Pat>) {
        for pat in inputs {
            let binding = self.binding_for(pat, None);
            self.bind(pat, &binding);
        }
    }

    // Sources.

    /// The sensitive value an expression evaluates to, following value-keeping adapters only:
    /// what a `let` binding of it holds.
    fn carried(&self, expr: &Expr) -> Option<Leak> {
        match expr {
            Expr::Try(inner) => self.carried(&inner.expr),
            Expr::Paren(inner) => self.carried(&inner.expr),
            Expr::Group(inner) => self.carried(&inner.expr),
            Expr::Reference(inner) => self.carried(&inner.expr),
            Expr::Unary(inner) if matches!(inner.op, syn::UnOp::Deref(_)) => {
                self.carried(&inner.expr)
            }
            Expr::Await(inner) => self.carried(&inner.base),
            Expr::MethodCall(call) => self.method_source(call).or_else(|| {
                VALUE_KEEPING_METHODS
                    .contains(&call.method.to_string().as_str())
                    .then(|| self.carried(&call.receiver))
                    .flatten()
            }),
            Expr::Call(call) => self.call_source(call).or_else(|| {
                match (is_value_wrapper(&call.func), call.args.first()) {
                    (true, Some(arg)) if call.args.len() == 1 => self.carried(arg),
                    _ => None,
                }
            }),
            Expr::Path(path) => self.path_source(path),
            Expr::Field(field) => self.field_source(field),
            Expr::Index(index) => self.index_source(index),
            Expr::Macro(mac) if macros::sink_of(&mac.mac.path) == Some(Sink::Format) => {
                self.macro_leaks(&mac.mac, 0).into_iter().next()
            }
            _ => None,
        }
    }

    /// `std::env::var(..)`, `env::var_os(..)`, an imported `var(..)`; `SecretString::from(..)`.
    fn call_source(&self, call: &syn::ExprCall) -> Option<Leak> {
        let Expr::Path(func) = &*call.func else {
            return None;
        };
        let segments: Vec<String> = func
            .path
            .segments
            .iter()
            .map(|segment| segment.ident.to_string())
            .collect();
        let last = segments.last()?;
        let from_env = match segments.as_slice() {
            [.., module, _] => module == "env" && ENV_READERS.contains(&last.as_str()),
            [_] => self.env_imports.contains(last),
            [] => false,
        };
        if from_env {
            return Some(Leak {
                what: format!("an environment value (`{}`)", segments.join("::")),
                span: call.span(),
                via: String::new(),
            });
        }
        rules::secret_type_of_constructor(&func.path).map(|secret_type| Leak {
            what: format!("a `{secret_type}` (`{}`)", segments.join("::")),
            span: call.span(),
            via: String::new(),
        })
    }

    /// `.expose_secret()`; a header value: `.get(..)` on `.headers()` or on a binding or field
    /// named `headers`.
    fn method_source(&self, call: &syn::ExprMethodCall) -> Option<Leak> {
        let method = call.method.to_string();
        if method == "expose_secret" {
            return Some(Leak {
                what: "an `expose_secret()` value".to_owned(),
                span: call.method.span(),
                via: String::new(),
            });
        }
        if ["get", "get_all", "typed_get"].contains(&method.as_str()) && is_headers(&call.receiver)
        {
            return Some(Leak {
                what: format!("an HTTP header value (`headers().{method}(..)`)"),
                span: call.span(),
                via: String::new(),
            });
        }
        None
    }

    /// `headers[header::AUTHORIZATION]`.
    fn index_source(&self, index: &syn::ExprIndex) -> Option<Leak> {
        is_headers(&index.expr).then(|| Leak {
            what: "an HTTP header value (`headers[..]`)".to_owned(),
            span: index.span(),
            via: String::new(),
        })
    }

    fn path_source(&self, path: &syn::ExprPath) -> Option<Leak> {
        let ident = path.path.get_ident()?;
        self.lookup(&ident.to_string()).map(|what| Leak {
            what,
            span: ident.span(),
            via: String::new(),
        })
    }

    fn field_source(&self, field: &syn::ExprField) -> Option<Leak> {
        let syn::Member::Named(name) = &field.member else {
            return None;
        };
        let text = name.to_string();
        if rules::is_secret_name(&text) {
            return Some(Leak {
                what: format!("field `{text}` (a secret-looking name)"),
                span: name.span(),
                via: String::new(),
            });
        }
        if self.secret_fields.contains(&text) {
            return Some(Leak {
                what: format!("field `{text}` (declared with a secret type in this file)"),
                span: name.span(),
                via: String::new(),
            });
        }
        None
    }

    /// The first sensitive value anywhere inside an expression: what a sink receiving it shows.
    fn leak_in(&self, expr: &Expr) -> Option<Leak> {
        let mut search = LeakSearch {
            walk: self,
            found: None,
        };
        search.visit_expr(expr);
        search.found
    }

    /// Every sensitive value among a sink macro's arguments, `skip` leading arguments aside.
    fn macro_leaks(&self, mac: &syn::Macro, skip: usize) -> Vec<Leak> {
        let pieces = macros::pieces(mac.tokens.clone());
        let named: HashSet<String> = pieces
            .iter()
            .filter_map(|piece| match piece {
                Piece::Value { name, .. } => name.clone(),
                _ => None,
            })
            .collect();
        let mut leaks = Vec::new();
        for piece in pieces.into_iter().skip(skip) {
            match piece {
                Piece::Nothing => {}
                Piece::FormatString(format) => {
                    for capture in macros::implicit_captures(&format.value()) {
                        if named.contains(&capture) {
                            continue;
                        }
                        if let Some(what) = self.lookup(&capture) {
                            leaks.push(Leak {
                                what,
                                span: format.span(),
                                via: format!(" through `{{{capture}}}` in the format string"),
                            });
                        }
                    }
                }
                Piece::Value { tokens, .. } => {
                    let found = match syn::parse2::<Expr>(tokens.clone()) {
                        Ok(expr) => self.leak_in(&expr),
                        Err(_) => self.token_leak(tokens),
                    };
                    leaks.extend(found);
                }
            }
        }
        leaks
    }

    /// For arguments that are not an expression: a secret-looking name, `expose_secret` or
    /// `env::var*` anywhere among the tokens.
    fn token_leak(&self, tokens: TokenStream) -> Option<Leak> {
        let tokens: Vec<TokenTree> = tokens.into_iter().collect();
        for (index, token) in tokens.iter().enumerate() {
            match token {
                TokenTree::Group(group) => {
                    if let Some(leak) = self.token_leak(group.stream()) {
                        return Some(leak);
                    }
                }
                TokenTree::Ident(ident) => {
                    let name = ident.to_string();
                    let after_env = index >= 3
                        && matches!(&tokens[index - 3], TokenTree::Ident(env) if env == "env");
                    let what = if name == "expose_secret" {
                        Some("an `expose_secret()` value".to_owned())
                    } else if after_env && ENV_READERS.contains(&name.as_str()) {
                        Some(format!("an environment value (`env::{name}`)"))
                    } else {
                        self.lookup(&name)
                    };
                    if let Some(what) = what {
                        return Some(Leak {
                            what,
                            span: ident.span(),
                            via: String::new(),
                        });
                    }
                }
                _ => {}
            }
        }
        None
    }

    // Sinks.

    fn check_sink_macro(&mut self, mac: &syn::Macro, sink: Sink) {
        let name = mac
            .path
            .segments
            .last()
            .map(|segment| segment.ident.to_string())
            .unwrap_or_default();
        let (skip, target) = match sink {
            Sink::Log | Sink::Print => (0, format!("`{name}!`")),
            Sink::Panic { skip } => (skip, format!("the `{name}!` message")),
            Sink::Format => return,
        };
        self.sink_line = mac.path.span().start().line;
        for leak in self.macro_leaks(mac, skip) {
            self.report(&leak, &target);
        }
    }

    /// `#[instrument]` records every argument unless skipped: a secret parameter must be.
    fn check_instrument(&mut self, attrs: &[syn::Attribute], sig: &syn::Signature) {
        for attr in attrs {
            let is_instrument = attr
                .path()
                .segments
                .last()
                .is_some_and(|segment| segment.ident == "instrument");
            if !is_instrument {
                continue;
            }
            let arguments = match &attr.meta {
                syn::Meta::List(list) => list.tokens.clone(),
                _ => TokenStream::new(),
            };
            let (skip_all, skipped, fields) = instrument_arguments(arguments);
            let attr_line = attr.pound_token.span.start().line;
            self.sink_line = attr_line;
            if let Some(fields) = fields {
                for leak in self.macro_leaks(&fields_as_macro(fields), 0) {
                    self.report(&leak, "an `#[instrument]` field");
                }
            }
            if skip_all {
                continue;
            }
            for input in &sig.inputs {
                let syn::FnArg::Typed(typed) = input else {
                    continue;
                };
                let Pat::Ident(param) = &*typed.pat else {
                    continue;
                };
                let name = param.ident.to_string();
                if skipped.contains(&name) {
                    continue;
                }
                let why = match rules::secret_type_in(&typed.ty) {
                    Some(secret_type) => Some(format!("a `{secret_type}`")),
                    None => {
                        rules::is_secret_name(&name).then(|| "a secret-looking name".to_owned())
                    }
                };
                if let Some(why) = why {
                    let start = attr.pound_token.span.start();
                    self.findings.push(RawFinding {
                        line: start.line,
                        column: start.column + 1,
                        anchors: vec![start.line, param.ident.span().start().line],
                        message: format!(
                            "parameter `{name}` ({why}) reaches `#[instrument]`, which records it; add `skip({name})` or `skip_all`"
                        ),
                    });
                }
            }
        }
    }

    fn enter_fn(&mut self, sig: &syn::Signature) -> Vec<HashMap<String, Binding>> {
        let outer = std::mem::replace(&mut self.scopes, vec![HashMap::new()]);
        for input in &sig.inputs {
            if let syn::FnArg::Typed(typed) = input {
                let binding = Self::binding_of_type(&typed.ty).unwrap_or(Binding::Clean);
                self.bind(&typed.pat, &binding);
            }
        }
        outer
    }

    fn walk_fn(
        &mut self,
        attrs: &[syn::Attribute],
        sig: &syn::Signature,
        body: Option<&syn::Block>,
    ) {
        let outer = self.enter_fn(sig);
        self.check_instrument(attrs, sig);
        for attr in attrs {
            self.visit_attribute(attr);
        }
        if let Some(body) = body {
            self.visit_block(body);
        }
        self.scopes = outer;
    }

    /// Arguments of a macro that is not a sink: walked as expressions or statements when they
    /// parse as such, so sinks and bindings inside are seen; otherwise searched for nested
    /// sink macros (`tokio::select!`, `json!`).
    fn walk_other_macro(&mut self, mac: &syn::Macro) {
        let parser = Punctuated::<Expr, syn::Token![,]>::parse_terminated;
        if let Ok(exprs) = parser.parse2(mac.tokens.clone()) {
            for expr in &exprs {
                self.visit_expr(expr);
            }
            return;
        }
        if let Ok(stmts) = syn::Block::parse_within.parse2(mac.tokens.clone()) {
            self.scopes.push(HashMap::new());
            for stmt in &stmts {
                self.visit_stmt(stmt);
            }
            self.scopes.pop();
            return;
        }
        for nested in nested_macros(mac.tokens.clone()) {
            self.visit_macro(&nested);
        }
    }
}

impl<'ast> Visit<'ast> for FileWalk {
    fn visit_item_fn(&mut self, item: &'ast syn::ItemFn) {
        self.walk_fn(&item.attrs, &item.sig, Some(&item.block));
    }

    fn visit_impl_item_fn(&mut self, item: &'ast syn::ImplItemFn) {
        self.walk_fn(&item.attrs, &item.sig, Some(&item.block));
    }

    fn visit_trait_item_fn(&mut self, item: &'ast syn::TraitItemFn) {
        self.walk_fn(&item.attrs, &item.sig, item.default.as_ref());
    }

    fn visit_block(&mut self, block: &'ast syn::Block) {
        self.scopes.push(HashMap::new());
        visit::visit_block(self, block);
        self.scopes.pop();
    }

    fn visit_expr_closure(&mut self, closure: &'ast syn::ExprClosure) {
        self.scopes.push(HashMap::new());
        self.bind_params(closure.inputs.iter());
        self.visit_expr(&closure.body);
        self.scopes.pop();
    }

    fn visit_local(&mut self, local: &'ast syn::Local) {
        for attr in &local.attrs {
            self.visit_attribute(attr);
        }
        let init = local.init.as_ref();
        if let Some(init) = init {
            self.visit_expr(&init.expr);
            if let Some((_, diverge)) = &init.diverge {
                self.visit_expr(diverge);
            }
        }
        let binding = self.binding_for(&local.pat, init.map(|init| &*init.expr));
        self.bind(&local.pat, &binding);
    }

    fn visit_expr_let(&mut self, expr: &'ast syn::ExprLet) {
        self.visit_expr(&expr.expr);
        let binding = self.binding_for(&expr.pat, Some(&expr.expr));
        self.bind(&expr.pat, &binding);
    }

    fn visit_expr_match(&mut self, expr: &'ast syn::ExprMatch) {
        self.visit_expr(&expr.expr);
        for arm in &expr.arms {
            self.scopes.push(HashMap::new());
            let binding = self.binding_for(&arm.pat, Some(&expr.expr));
            self.bind(&arm.pat, &binding);
            if let Some((_, guard)) = &arm.guard {
                self.visit_expr(guard);
            }
            self.visit_expr(&arm.body);
            self.scopes.pop();
        }
    }

    fn visit_expr_for_loop(&mut self, expr: &'ast syn::ExprForLoop) {
        self.visit_expr(&expr.expr);
        self.scopes.push(HashMap::new());
        let binding = self.binding_for(&expr.pat, Some(&expr.expr));
        self.bind(&expr.pat, &binding);
        self.visit_block(&expr.body);
        self.scopes.pop();
    }

    fn visit_expr_method_call(&mut self, call: &'ast syn::ExprMethodCall) {
        // `span.record("field", value)` puts a value into a span like a field of `info_span!`.
        if call.method == "record"
            && call.args.len() == 2
            && let Some(Expr::Lit(syn::ExprLit {
                lit: syn::Lit::Str(_),
                ..
            })) = call.args.first()
            && let Some(value) = call.args.last()
            && let Some(leak) = self.leak_in(value)
        {
            self.sink_line = call.method.span().start().line;
            self.report(&leak, "a span field (`Span::record`)");
        }
        visit::visit_expr_method_call(self, call);
    }

    fn visit_macro(&mut self, mac: &'ast syn::Macro) {
        match macros::sink_of(&mac.path) {
            Some(sink) if sink != Sink::Format => {
                self.check_sink_macro(mac, sink);
                // Closures and blocks inside the arguments may hold sinks of their own.
                for piece in macros::pieces(mac.tokens.clone()) {
                    if let Piece::Value { tokens, .. } = piece
                        && let Ok(expr) = syn::parse2::<Expr>(tokens)
                    {
                        self.visit_expr(&expr);
                    }
                }
            }
            _ => self.walk_other_macro(mac),
        }
    }
}

/// Searches one expression for a sensitive part.
struct LeakSearch<'walk> {
    walk: &'walk FileWalk,
    found: Option<Leak>,
}

impl<'ast> Visit<'ast> for LeakSearch<'_> {
    fn visit_expr(&mut self, expr: &'ast Expr) {
        if self.found.is_none() {
            visit::visit_expr(self, expr);
        }
    }

    fn visit_expr_call(&mut self, call: &'ast syn::ExprCall) {
        match self.walk.call_source(call) {
            Some(leak) => self.found = Some(leak),
            None => visit::visit_expr_call(self, call),
        }
    }

    fn visit_expr_method_call(&mut self, call: &'ast syn::ExprMethodCall) {
        if let Some(leak) = self.walk.method_source(call) {
            self.found = Some(leak);
            return;
        }
        if MEASURING_METHODS.contains(&call.method.to_string().as_str()) {
            for arg in &call.args {
                self.visit_expr(arg);
            }
            return;
        }
        visit::visit_expr_method_call(self, call);
    }

    fn visit_expr_index(&mut self, index: &'ast syn::ExprIndex) {
        match self.walk.index_source(index) {
            Some(leak) => self.found = Some(leak),
            None => visit::visit_expr_index(self, index),
        }
    }

    fn visit_expr_path(&mut self, path: &'ast syn::ExprPath) {
        if let Some(leak) = self.walk.path_source(path) {
            self.found = Some(leak);
        }
    }

    fn visit_expr_field(&mut self, field: &'ast syn::ExprField) {
        if let Some(leak) = self.walk.field_source(field) {
            self.found = Some(leak);
            return;
        }
        let metadata = matches!(&field.member, syn::Member::Named(name)
            if rules::is_metadata_name(&name.to_string()));
        if !metadata {
            self.visit_expr(&field.base);
        }
    }

    fn visit_macro(&mut self, mac: &'ast syn::Macro) {
        if self.found.is_none() {
            self.found = self.walk.macro_leaks(mac, 0).into_iter().next();
        }
    }
}

/// Names a file's items declare that matter to every function in it.
#[derive(Default)]
struct Declarations {
    env_imports: HashSet<String>,
    secret_fields: HashSet<String>,
    number_items: HashSet<String>,
}

impl<'ast> Visit<'ast> for Declarations {
    fn visit_item_use(&mut self, item: &'ast syn::ItemUse) {
        collect_env_imports(&item.tree, &mut Vec::new(), &mut self.env_imports);
    }

    fn visit_item_const(&mut self, item: &'ast syn::ItemConst) {
        if rules::is_number_type(&item.ty) {
            self.number_items.insert(item.ident.to_string());
        }
        visit::visit_item_const(self, item);
    }

    fn visit_item_static(&mut self, item: &'ast syn::ItemStatic) {
        if rules::is_number_type(&item.ty) {
            self.number_items.insert(item.ident.to_string());
        }
        visit::visit_item_static(self, item);
    }

    fn visit_field(&mut self, field: &'ast syn::Field) {
        if let Some(name) = &field.ident
            && rules::secret_type_in(&field.ty).is_some()
        {
            self.secret_fields.insert(name.to_string());
        }
        visit::visit_field(self, field);
    }
}

fn collect_env_imports(tree: &syn::UseTree, prefix: &mut Vec<String>, found: &mut HashSet<String>) {
    let from_env = prefix.last().is_some_and(|last| last == "env");
    match tree {
        syn::UseTree::Path(path) => {
            prefix.push(path.ident.to_string());
            collect_env_imports(&path.tree, prefix, found);
            prefix.pop();
        }
        syn::UseTree::Name(name)
            if from_env && ENV_READERS.contains(&name.ident.to_string().as_str()) =>
        {
            found.insert(name.ident.to_string());
        }
        syn::UseTree::Rename(rename)
            if from_env && ENV_READERS.contains(&rename.ident.to_string().as_str()) =>
        {
            found.insert(rename.rename.to_string());
        }
        syn::UseTree::Glob(_) if from_env => {
            found.extend(ENV_READERS.iter().map(|name| (*name).to_owned()));
        }
        syn::UseTree::Group(group) => {
            for item in &group.items {
                collect_env_imports(item, prefix, found);
            }
        }
        _ => {}
    }
}

/// The names a pattern binds, apart from those inside `Err(..)`.
#[derive(Default)]
struct PatNames {
    names: Vec<String>,
    errors: Vec<String>,
    inside_err: bool,
}

impl<'ast> Visit<'ast> for PatNames {
    fn visit_pat_ident(&mut self, pat: &'ast syn::PatIdent) {
        if self.inside_err {
            self.errors.push(pat.ident.to_string());
        } else {
            self.names.push(pat.ident.to_string());
        }
        visit::visit_pat_ident(self, pat);
    }

    fn visit_pat_tuple_struct(&mut self, pat: &'ast syn::PatTupleStruct) {
        let is_err = pat
            .path
            .segments
            .last()
            .is_some_and(|last| last.ident == "Err");
        let outer = self.inside_err;
        self.inside_err = outer || is_err;
        visit::visit_pat_tuple_struct(self, pat);
        self.inside_err = outer;
    }
}

/// `Some(..)`, `Ok(..)`, `String::from(..)`, `Arc::new(..)`: calls whose result is their argument.
fn is_value_wrapper(func: &Expr) -> bool {
    let Expr::Path(path) = func else {
        return false;
    };
    let segments: Vec<String> = path
        .path
        .segments
        .iter()
        .map(|segment| segment.ident.to_string())
        .collect();
    match segments.as_slice() {
        [single] => single == "Some" || single == "Ok",
        [.., owner, constructor] => {
            [
                "String", "Box", "Arc", "Rc", "Cow", "OsString", "PathBuf", "Vec",
            ]
            .contains(&owner.as_str())
                && (constructor == "from" || constructor == "new")
        }
        [] => false,
    }
}

/// `headers`, `self.headers`, `request.headers()`, `parts.headers_mut()`.
fn is_headers(expr: &Expr) -> bool {
    match expr {
        Expr::MethodCall(call) => call.method == "headers" || call.method == "headers_mut",
        Expr::Field(field) => {
            matches!(&field.member, syn::Member::Named(name) if name == "headers")
        }
        Expr::Path(path) => path.path.is_ident("headers"),
        Expr::Reference(reference) => is_headers(&reference.expr),
        Expr::Paren(paren) => is_headers(&paren.expr),
        _ => false,
    }
}

/// `skip_all`, the names in `skip(..)`, and the contents of `fields(..)`.
fn instrument_arguments(tokens: TokenStream) -> (bool, HashSet<String>, Option<TokenStream>) {
    let tokens: Vec<TokenTree> = tokens.into_iter().collect();
    let mut skip_all = false;
    let mut skipped = HashSet::new();
    let mut fields = None;
    for (index, token) in tokens.iter().enumerate() {
        let TokenTree::Ident(ident) = token else {
            continue;
        };
        let group = match tokens.get(index + 1) {
            Some(TokenTree::Group(group)) => Some(group.stream()),
            _ => None,
        };
        match (ident.to_string().as_str(), group) {
            ("skip_all", _) => skip_all = true,
            ("skip", Some(names)) => {
                skipped.extend(names.into_iter().filter_map(|name| match name {
                    TokenTree::Ident(name) => Some(name.to_string()),
                    _ => None,
                }))
            }
            ("fields", Some(contents)) => fields = Some(contents),
            _ => {}
        }
    }
    (skip_all, skipped, fields)
}

/// `#[instrument(fields(..))]` reads like the fields of a log macro.
fn fields_as_macro(tokens: TokenStream) -> syn::Macro {
    syn::Macro {
        path: syn::Path::from(syn::Ident::new("fields", Span::call_site())),
        bang_token: syn::Token![!](Span::call_site()),
        delimiter: syn::MacroDelimiter::Paren(syn::token::Paren::default()),
        tokens,
    }
}

/// `name!(..)` invocations among tokens that are not an expression.
fn nested_macros(tokens: TokenStream) -> Vec<syn::Macro> {
    let tokens: Vec<TokenTree> = tokens.into_iter().collect();
    let mut found = Vec::new();
    let mut index = 0;
    while index < tokens.len() {
        match (&tokens[index], tokens.get(index + 1), tokens.get(index + 2)) {
            (
                TokenTree::Ident(name),
                Some(TokenTree::Punct(bang)),
                Some(TokenTree::Group(group)),
            ) if bang.as_char() == '!' => {
                let delimiter = match group.delimiter() {
                    proc_macro2::Delimiter::Brace => {
                        syn::MacroDelimiter::Brace(syn::token::Brace(group.delim_span()))
                    }
                    proc_macro2::Delimiter::Bracket => {
                        syn::MacroDelimiter::Bracket(syn::token::Bracket(group.delim_span()))
                    }
                    _ => syn::MacroDelimiter::Paren(syn::token::Paren(group.delim_span())),
                };
                found.push(syn::Macro {
                    path: syn::Path::from(name.clone()),
                    bang_token: syn::Token![!](bang.span()),
                    delimiter,
                    tokens: group.stream(),
                });
                index += 3;
                continue;
            }
            (TokenTree::Group(group), _, _) => found.extend(nested_macros(group.stream())),
            _ => {}
        }
        index += 1;
    }
    found
}
