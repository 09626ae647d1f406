//! The states of DESIGN section 2. They are stored as text by the entities'
//! enumerated columns; the domain names them from here.

pub use entity::states::{BootenvKind, DeploymentState, JigKind, NoderoleState, RunState};
