//! One connection: its session, and the simple and extended query
//! protocols over it.

use std::fmt::Debug;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use arrow::datatypes::DataType as ArrowType;
use arrow_pg::datatypes::{arrow_schema_to_pg_fields, encode_recordbatch, into_pg_type};
use async_trait::async_trait;
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};
use futures::{Sink, SinkExt, StreamExt, stream};
use omen_sql::{CopyIn, Output, PreparedStatement, Session};
use pgwire::api::copy::CopyHandler;
use pgwire::api::portal::{Format, Portal};
use pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use pgwire::api::results::{CopyResponse, FieldInfo, QueryResponse, Response, Tag};
use pgwire::api::stmt::QueryParser;
use pgwire::api::store::PortalStore;
use pgwire::api::{ClientInfo, ClientPortalStore, PgWireServerHandlers, Type};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::PgWireBackendMessage;
use pgwire::messages::copy::{CopyData, CopyDone, CopyFail};
use tokio::sync::Mutex;
use tokio::time::Instant;

use super::{Shared, startup};

/// The handlers of one connection: pgwire asks for them once per socket,
/// so the session lives here.
pub(super) struct Connection {
    shared: Arc<Shared>,
    session: Arc<SessionHandler>,
}

impl Connection {
    pub(super) fn new(shared: Arc<Shared>) -> Self {
        let mut session = shared.db.engine().session();
        // PostgreSQL's default, which its clients assume (pgbench's TPC-B
        // among them); the embedded API stays at snapshot isolation.
        session.set_default_isolation(omen_sql::Isolation::ReadCommitted);
        let session = Arc::new(Mutex::new(session));
        let session = Arc::new(SessionHandler {
            parser: Arc::new(Parser { shared: Arc::clone(&shared), session: Arc::clone(&session) }),
            session,
            copy: Mutex::new(None),
            shared: Arc::clone(&shared),
        });
        Self { shared, session }
    }
}

impl PgWireServerHandlers for Connection {
    fn simple_query_handler(&self) -> Arc<impl SimpleQueryHandler> {
        Arc::clone(&self.session)
    }

    fn extended_query_handler(&self) -> Arc<impl ExtendedQueryHandler> {
        Arc::clone(&self.session)
    }

    fn startup_handler(&self) -> Arc<impl pgwire::api::auth::StartupHandler> {
        Arc::new(startup::handler(&self.shared))
    }

    fn copy_handler(&self) -> Arc<impl CopyHandler> {
        Arc::clone(&self.session)
    }

    fn cancel_handler(&self) -> Arc<impl pgwire::api::cancel::CancelHandler> {
        Arc::new(Cancels(Arc::clone(&self.shared)))
    }
}

/// Routes a cancel request (sent on its own connection) to the session it names.
struct Cancels(Arc<Shared>);

#[async_trait]
impl pgwire::api::cancel::CancelHandler for Cancels {
    async fn on_cancel_request(&self, request: pgwire::messages::cancel::CancelRequest) {
        self.0.cancels.cancel(request.pid, &request.secret_key).await;
    }
}

/// A connection's session and the statements it runs.
pub(super) struct SessionHandler {
    shared: Arc<Shared>,
    session: Arc<Mutex<Session>>,
    parser: Arc<Parser>,
    /// The `COPY ... FROM STDIN` receiving data, between its CopyInResponse
    /// and the client's CopyDone or CopyFail.
    copy: Mutex<Option<CopyIn>>,
}

/// Whether a session is outside a transaction, inside one, or in a failed one.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Status {
    Idle,
    InTransaction,
    Failed,
}

fn status(session: &Session) -> Status {
    if session.is_failed() {
        Status::Failed
    } else if session.in_transaction() {
        Status::InTransaction
    } else {
        Status::Idle
    }
}

impl SessionHandler {
    /// Runs one statement and answers as PostgreSQL does. pgwire tracks the
    /// transaction status from the kind of response: a statement that
    /// opened a transaction answers `TransactionStart`, one that ended it
    /// `TransactionEnd`.
    /// Warnings the statement leaves go to `client` as notices first.
    async fn run<C>(
        &self,
        client: &mut C,
        statement: &PreparedStatement,
        params: Vec<omen_rowstore::Value>,
        format: &Format,
    ) -> PgWireResult<Response>
    where
        C: Sink<PgWireBackendMessage> + Unpin + Send,
        PgWireError: From<C::Error>,
    {
        let mut session = self.session.lock().await;
        if statement.is_copy_from() {
            let copy = session.copy_from(statement).await.map_err(sql_error)?;
            let columns = copy.columns();
            *self.copy.lock().await = Some(copy);
            return Ok(Response::CopyIn(CopyResponse::new(0, columns, stream::empty())));
        }
        let before = status(&session);
        let deadline = self.timeout(&session).map(|d| Instant::now() + d);
        // The statement runs to its first batch under the timeout (and,
        // through pgwire, a cancel request): an aggregate or a sort does all
        // its work by then. Later batches are checked against the deadline
        // as they stream.
        let commits = statement.commits(session.in_transaction());
        let execute = within(deadline, async {
            match session.execute_prepared(statement, &params).await {
                Ok(Output::Rows { tag, mut stream }) => {
                    // The session saw the statement succeed; if computing its
                    // rows fails or is cancelled, the statement failed.
                    let guard = FailOnDrop(Some(&mut session));
                    let first = stream.next().await.transpose().map_err(omen_sql::Error::from)?;
                    guard.disarm();
                    Ok((Output::Rows { tag, stream }, first))
                }
                Ok(out) => Ok((out, None)),
                Err(e) => Err(e),
            }
        });
        // A commit waits for the log's fsync on this thread: let the runtime
        // move other connections off it meanwhile (with two worker threads,
        // two waiting commits would otherwise stall every session).
        let executed =
            if commits { tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(execute)) } else { execute.await };
        let (out, first) = match executed {
            Ok(done) => done,
            Err(e) => {
                // Also when the failure came from the stream, after the
                // session saw the statement succeed.
                session.fail_statement();
                return Err(e);
            }
        };
        let after = status(&session);
        let warnings = session.take_warnings();
        drop(session);
        for warning in warnings {
            let notice = ErrorInfo::new("WARNING".into(), "01000".into(), warning);
            client.feed(PgWireBackendMessage::NoticeResponse(notice.into())).await?;
        }
        let response = match out {
            Output::Rows { tag, stream: rest } => {
                let fields = Arc::new(arrow_schema_to_pg_fields(&rest.schema(), format, None)?);
                let encode = Arc::clone(&fields);
                let batches = stream::iter(first.map(Ok)).chain(self.rest(rest, deadline));
                let rows = batches
                    .map(move |batch| {
                        let encoded: Box<dyn Iterator<Item = PgWireResult<_>> + Send + Sync> = match batch {
                            Ok(batch) => encode_recordbatch(Arc::clone(&encode), batch),
                            Err(e) => Box::new(std::iter::once(Err(e))),
                        };
                        stream::iter(encoded)
                    })
                    .flatten();
                let mut response = QueryResponse::new(fields, rows);
                // PostgreSQL's INSERT tag carries an OID (always 0) before the count.
                response.set_command_tag(if tag == "INSERT" { "INSERT 0" } else { tag });
                Response::Query(response)
            }
            Output::Affected { tag: "INSERT", rows } => Response::Execution(Tag::new("INSERT").with_oid(0).with_rows(rows as usize)),
            Output::Affected { tag, rows } => Response::Execution(Tag::new(tag).with_rows(rows as usize)),
            Output::Command("") => Response::EmptyQuery,
            Output::Command(tag) => Response::Execution(Tag::new(tag)),
        };
        Ok(match (response, before, after) {
            (Response::Execution(tag), Status::Idle, Status::InTransaction) => Response::TransactionStart(tag),
            (Response::Execution(tag), Status::InTransaction | Status::Failed, Status::Idle) => Response::TransactionEnd(tag),
            (response, ..) => response,
        })
    }

    /// The batches after the first, as pgwire sends them: the first error
    /// (or the deadline passing) ends the stream and aborts the session's
    /// open transaction, as a failed statement does.
    fn rest(
        &self,
        rows: datafusion::physical_plan::SendableRecordBatchStream,
        deadline: Option<Instant>,
    ) -> impl futures::Stream<Item = PgWireResult<arrow::array::RecordBatch>> + Send + 'static {
        let session = Arc::clone(&self.session);
        stream::unfold(Some(rows), move |rows| {
            let session = Arc::clone(&session);
            async move {
                let mut rows = rows?;
                match within(deadline, async { rows.next().await.transpose().map_err(omen_sql::Error::from) }).await {
                    Ok(Some(batch)) => Some((Ok(batch), Some(rows))),
                    Ok(None) => None,
                    Err(e) => {
                        session.lock().await.fail_statement();
                        Some((Err(e), None))
                    }
                }
            }
        })
    }

    /// The statement timeout: the session's `statement_timeout` if set,
    /// else the server's.
    fn timeout(&self, session: &Session) -> Option<Duration> {
        let set = session.settings().duration("statement_timeout");
        match set {
            Some(d) if d.is_zero() => None,
            Some(d) => Some(d),
            None => self.shared.options.statement_timeout,
        }
    }
}

/// Aborts the session's open transaction when dropped armed: a statement
/// whose rows are still being computed has not succeeded yet.
struct FailOnDrop<'a>(Option<&'a mut Session>);

impl FailOnDrop<'_> {
    fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for FailOnDrop<'_> {
    fn drop(&mut self) {
        if let Some(session) = self.0.take() {
            session.fail_statement();
        }
    }
}

/// Runs `fut` until `deadline`; past it, the statement-timeout error.
async fn within<T>(deadline: Option<Instant>, fut: impl Future<Output = omen_sql::Result<T>>) -> PgWireResult<T> {
    let result = match deadline {
        Some(d) => tokio::time::timeout_at(d, fut)
            .await
            .map_err(|_| sql_error(omen_sql::Error::QueryCanceled("canceling statement due to statement timeout".into())))?,
        None => fut.await,
    };
    result.map_err(sql_error)
}

#[async_trait]
impl SimpleQueryHandler for SessionHandler {
    async fn do_query<C>(&self, client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let mut responses = Vec::new();
        for sql in split(query)? {
            let result = match self.parser.prepare(&sql).await {
                Ok(statement) => self.run(client, &statement, Vec::new(), &Format::UnifiedText).await,
                Err(e) => Err(e),
            };
            match result {
                // The data follows; statements after a COPY in the same
                // query are not run (PostgreSQL runs them after the data).
                Ok(response @ Response::CopyIn(_)) => {
                    responses.push(response);
                    break;
                }
                Ok(response) => responses.push(response),
                // The rest of the query is skipped, as in PostgreSQL.
                Err(e) => {
                    responses.push(Response::Error(Box::new(e.into())));
                    break;
                }
            }
        }
        Ok(responses)
    }
}

/// The statements of a simple query, as texts to plan one by one. Most
/// queries are one statement, whose text is used as sent (the plan cache
/// is keyed by it); a text with several is split at the semicolons between
/// tokens, so statements DataFusion's parser does not know (COPY, VACUUM)
/// split too.
fn split(query: &str) -> PgWireResult<Vec<String>> {
    if !query.trim().trim_end_matches(';').contains(';') {
        return Ok(vec![query.to_owned()]);
    }
    let dialect = PostgreSqlDialect {};
    let tokens = Tokenizer::new(&dialect, query).tokenize().map_err(|e| sql_error(omen_sql::Error::Parse(e.to_string())))?;
    let statements: Vec<String> = tokens
        .split(|t| *t == Token::SemiColon)
        .filter(|part| part.iter().any(|t| !matches!(t, Token::Whitespace(_))))
        .map(|part| part.iter().map(ToString::to_string).collect())
        .collect();
    Ok(if statements.len() <= 1 { vec![query.to_owned()] } else { statements })
}

#[async_trait]
impl CopyHandler for SessionHandler {
    async fn on_copy_data<C>(&self, _client: &mut C, data: CopyData) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        // A bad row is kept by the load and reported at CopyDone: the client
        // reads no reply before then.
        if let Some(copy) = self.copy.lock().await.as_mut() {
            copy.write(&data.data);
        }
        Ok(())
    }

    async fn on_copy_done<C>(&self, client: &mut C, _done: CopyDone) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let copy = self.copy.lock().await.take().ok_or_else(|| user_error("08P01", "CopyDone without a COPY in progress".into()))?;
        let mut session = self.session.lock().await;
        let finished = tokio::task::block_in_place(|| session.finish_copy(copy));
        drop(session);
        let rows = match finished.map_err(sql_error)? {
            Output::Affected { rows, .. } => rows,
            _ => 0,
        };
        client.send(PgWireBackendMessage::CommandComplete(Tag::new("COPY").with_rows(rows as usize).into())).await?;
        Ok(())
    }

    async fn on_copy_fail<C>(&self, _client: &mut C, fail: CopyFail) -> PgWireError
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        // Dropping the load rolls back its rows (and aborts an open transaction).
        self.copy.lock().await.take();
        sql_error(omen_sql::Error::QueryCanceled(format!("COPY from stdin failed: {}", fail.message)))
    }
}

/// Plans statements for the extended protocol (shared plan cache: a
/// statement every connection prepares is planned once).
pub(super) struct Parser {
    shared: Arc<Shared>,
    session: Arc<Mutex<Session>>,
}

impl Parser {
    /// The plan of `sql`. A statement that does not plan aborts the open
    /// transaction, as if it had run and failed (as in PostgreSQL).
    async fn prepare(&self, sql: &str) -> PgWireResult<Arc<PreparedStatement>> {
        match self.shared.db.engine().prepare(sql).await {
            Ok(statement) => Ok(statement),
            Err(e) => {
                self.session.lock().await.fail_statement();
                Err(sql_error(e))
            }
        }
    }
}

#[async_trait]
impl QueryParser for Parser {
    type Statement = Arc<PreparedStatement>;

    async fn parse_sql<C>(&self, _client: &C, sql: &str, _types: &[Option<Type>]) -> PgWireResult<Option<Self::Statement>>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        // Parameter types the client names are used when values are decoded;
        // the plan types them from the statement.
        self.prepare(sql).await.map(Some)
    }

    fn get_parameter_types(&self, statement: &Self::Statement) -> PgWireResult<Vec<Type>> {
        // A parameter nothing fixes the type of is text, which the
        // statement then converts (PostgreSQL's `unknown` literal).
        statement.param_types().iter().map(|t| t.as_ref().map_or(Ok(Type::TEXT), into_pg_type)).collect()
    }

    fn get_result_schema(&self, statement: &Self::Statement, format: Option<&Format>) -> PgWireResult<Vec<FieldInfo>> {
        match statement.result_schema() {
            Some(schema) => arrow_schema_to_pg_fields(&schema, format.unwrap_or(&Format::UnifiedText), None),
            None => Ok(Vec::new()),
        }
    }
}

#[async_trait]
impl ExtendedQueryHandler for SessionHandler {
    type Statement = Arc<PreparedStatement>;
    type QueryParser = Parser;

    fn query_parser(&self) -> Arc<Self::QueryParser> {
        Arc::clone(&self.parser)
    }

    async fn do_query<C>(&self, client: &mut C, portal: &Portal<Self::Statement>, _max_rows: usize) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let statement = &portal.statement.statement;
        let params = match decode(statement, portal) {
            Ok(params) => params,
            Err(e) => {
                self.session.lock().await.fail_statement();
                return Err(e);
            }
        };
        self.run(client, statement, params, &portal.result_column_format).await
    }
}

/// The values of a portal's parameters, in text or binary format, typed by
/// what the client said or else by the plan.
fn decode(statement: &PreparedStatement, portal: &Portal<Arc<PreparedStatement>>) -> PgWireResult<Vec<omen_rowstore::Value>> {
    if portal.parameter_len() == 0 {
        // No plan walk for the types when there is nothing to type.
        return Ok(Vec::new());
    }
    let types = statement.param_types();
    let inferred: Vec<Option<&ArrowType>> = types.iter().map(Option::as_ref).collect();
    let datafusion::common::ParamValues::List(scalars) = arrow_pg::datatypes::df::deserialize_parameters(portal, &inferred)? else {
        return Err(user_error("XX000", "parameters decoded by name".into()));
    };
    scalars.iter().map(|p| omen_sql::value_of_scalar(&p.value).map_err(sql_error)).collect()
}

/// An OmenDB error as the client sees it: PostgreSQL's SQLSTATE and message.
fn sql_error(e: omen_sql::Error) -> PgWireError {
    user_error(e.sqlstate(), e.to_string())
}

fn user_error(code: &str, message: String) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new("ERROR".into(), code.into(), message)))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use arrow::datatypes::Schema;

    #[test]
    fn one_statement_is_not_parsed_again() {
        assert_eq!(split("SELECT ';'").unwrap(), vec!["SELECT ';'"]);
        assert_eq!(split("SELECT 1;").unwrap(), vec!["SELECT 1;"]);
        assert_eq!(split("BEGIN; SELECT 1; COMMIT").unwrap().len(), 3);
        assert_eq!(split("vacuum analyze t; select ';' -- ;\n ; ").unwrap(), ["vacuum analyze t", " select ';' -- ;\n "]);
        assert!(split("SELECT 1; SELECT 'unterminated").is_err());
    }

    #[test]
    fn every_column_type_has_a_postgres_type() {
        use arrow::datatypes::{Field, TimeUnit};
        let schema = Schema::new(vec![
            Field::new("b", ArrowType::Boolean, true),
            Field::new("i", ArrowType::Int64, true),
            Field::new("d", ArrowType::Decimal128(12, 2), true),
            Field::new("t", ArrowType::Utf8, true),
            Field::new("y", ArrowType::Binary, true),
            Field::new("day", ArrowType::Date32, true),
            Field::new("ts", ArrowType::Timestamp(TimeUnit::Microsecond, None), true),
            Field::new("tz", ArrowType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())), true),
        ]);
        let types: Vec<Type> =
            arrow_schema_to_pg_fields(&schema, &Format::UnifiedText, None).unwrap().iter().map(|f| f.datatype().clone()).collect();
        assert_eq!(types, [Type::BOOL, Type::INT8, Type::NUMERIC, Type::TEXT, Type::BYTEA, Type::DATE, Type::TIMESTAMP, Type::TIMESTAMPTZ]);
    }
}
