//! g0 and g1c: cycles in the transactions' dependency graph (Adya's phenomena, found
//! as Elle finds them).
//!
//! Nodes are transactions that committed: `ok`, or `info` with a value read at
//! read_committed or in the final view. Edges:
//! - write-write (ww): on each partition, a transaction's send lands before the next
//!   transaction's send in offset order (where each landed: acknowledged, believed or
//!   observed); plain sends between them are passed through, the order stays;
//! - write-read (wr): a transaction's poll micro-op read a record another transaction
//!   sent.
//!
//! A cycle of ww edges only is G0; one with a wr edge is G1c. In Kafka offsets are
//! given at send time and transactions commit later, so the write order says nothing
//! about commit order and Kafka does not isolate writes (Jepsen: "G0 is legal"): G0,
//! and a G1c that needs a ww edge, break `write-isolation`, which only a header
//! promises. A wr edge, at read_committed, means the writer committed before the
//! reader read, so a cycle of wr edges alone is impossible under read_committed: that
//! G1c breaks `transactional`.
//!
//! G-single and G2 need read-write anti-dependencies: that a reader did *not* see a
//! write. A poll returns a bounded batch, never "the log ends here", so no history of
//! this format proves one, and (like Jepsen, whose rw inference is left out) they are
//! not looked for.
//!
//! Strongly connected components (Tarjan, iterative) per edge set, then one shortest
//! cycle per component by a breadth-first search inside it: linear in the edges.

use super::Findings;
use super::digest::{Digest, Outcome, Source};
use crate::invariant::{Guarantee, Invariant};
use crate::verdict::Witness;

/// The kind of a dependency.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Dep {
    Ww,
    Wr,
}

/// An edge from one transaction (an index into `Digest::txns`) to another, with what
/// shows it: for ww the two sends' value ids, for wr the writer's value id and the
/// read claim.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Edge {
    from: u32,
    to: u32,
    dep: Dep,
    first: u32,
    second: u32,
}

pub(super) fn check(digest: &Digest<'_>, findings: &mut Findings<'_>) {
    let committed: Vec<bool> = digest.txns.iter().map(|txn| committed(digest, txn)).collect();
    let edges = edges(digest, &committed);
    let nodes = digest.txns.len();
    findings.examined(Invariant::G0, edges.len() as u64, "dependencies");
    findings.examined(Invariant::G1c, edges.len() as u64, "dependencies");
    if edges.is_empty() {
        return;
    }
    let graph = |keep: &dyn Fn(Dep) -> bool| {
        Graph::new(nodes, edges.iter().copied().filter(|edge| keep(edge.dep)).collect())
    };
    // A cycle of reads alone: impossible at read_committed.
    let reads = graph(&|dep| dep == Dep::Wr);
    let mut in_read_cycle = vec![false; nodes];
    for component in reads.components() {
        for &node in &component {
            in_read_cycle[node as usize] = true;
        }
        if let Some(cycle) = reads.cycle(&component, |_| true) {
            report(digest, findings, Invariant::G1c, Guarantee::Transactional, &cycle);
        }
    }
    let writes = graph(&|dep| dep == Dep::Ww);
    for component in writes.components() {
        if let Some(cycle) = writes.cycle(&component, |_| true) {
            report(digest, findings, Invariant::G0, Guarantee::WriteIsolation, &cycle);
        }
    }
    let both = graph(&|_| true);
    for component in both.components() {
        if component.iter().any(|&node| in_read_cycle[node as usize]) {
            continue; // its cycle of reads alone is reported
        }
        if let Some(cycle) = both.cycle(&component, |edge| edge.dep == Dep::Wr) {
            report(digest, findings, Invariant::G1c, Guarantee::WriteIsolation, &cycle);
        }
    }
}

/// Whether a transaction took effect: committed, or indeterminate with a value read at
/// read_committed or in the final view.
fn committed(digest: &Digest<'_>, txn: &super::digest::TxnView<'_>) -> bool {
    match txn.outcome {
        Outcome::Ok => true,
        Outcome::Fail => false,
        Outcome::Info | Outcome::Pending => txn.sends.clone().any(|value| {
            let facts = &digest.facts[value as usize];
            facts.read || facts.in_view
        }),
    }
}

/// Every ww and wr edge between committed transactions, sorted, one per (from, to,
/// kind).
fn edges(digest: &Digest<'_>, committed: &[bool]) -> Vec<Edge> {
    let mut edges = Vec::new();
    // ww: committed transactional sends by (partition, landing offset).
    let mut landed: Vec<(u32, u64, u32, u32)> = Vec::new();
    for (index, txn) in digest.txns.iter().enumerate() {
        if !committed[index] {
            continue;
        }
        for value in txn.sends.clone() {
            if let Some((offset, _)) = digest.landing(value) {
                landed.push((digest.sends[value as usize].part, offset, value, index as u32));
            }
        }
    }
    landed.sort_unstable();
    for pair in landed.windows(2) {
        let ((part, _, first, from), (next_part, _, second, to)) = (pair[0], pair[1]);
        if part == next_part && from != to {
            edges.push(Edge { from, to, dep: Dep::Ww, first, second });
        }
    }
    // wr: a transaction's poll micro-op (it shares the transaction's completion) read
    // another committed transaction's send.
    let mut reader_of_event: Vec<(u32, u32)> = digest
        .txns
        .iter()
        .enumerate()
        .filter(|&(index, _)| committed[index])
        .filter_map(|(index, txn)| txn.completion.map(|event| (event, index as u32)))
        .collect();
    reader_of_event.sort_unstable();
    for (index, claim) in digest.claims.iter().enumerate() {
        let Source::Read { poll, .. } = claim.source else { continue };
        let Some(writer) = digest.sends.get(claim.value as usize).and_then(|send| send.txn) else {
            continue;
        };
        if !committed[writer as usize] {
            continue;
        }
        let event = digest.polls[poll as usize].event;
        let Ok(at) = reader_of_event.binary_search_by_key(&event, |&(event, _)| event) else {
            continue;
        };
        let reader = reader_of_event[at].1;
        if reader != writer {
            edges.push(Edge {
                from: writer,
                to: reader,
                dep: Dep::Wr,
                first: claim.value,
                second: index as u32,
            });
        }
    }
    edges.sort_unstable();
    edges.dedup_by_key(|edge| (edge.from, edge.to, edge.dep));
    edges
}

/// A directed graph in compressed sparse rows.
struct Graph {
    /// Node `n`'s edges are `edges[starts[n]..starts[n + 1]]`, sorted by target.
    starts: Vec<u32>,
    edges: Vec<Edge>,
}

impl Graph {
    /// From edges sorted by source.
    fn new(nodes: usize, edges: Vec<Edge>) -> Graph {
        let mut starts = vec![0u32; nodes + 1];
        for edge in &edges {
            starts[edge.from as usize + 1] += 1;
        }
        for node in 0..nodes {
            starts[node + 1] += starts[node];
        }
        debug_assert!(edges.windows(2).all(|pair| pair[0].from <= pair[1].from));
        Graph { starts, edges }
    }

    fn out(&self, node: u32) -> &[Edge] {
        &self.edges[self.starts[node as usize] as usize..self.starts[node as usize + 1] as usize]
    }

    /// The strongly connected components of more than one node (Tarjan's algorithm,
    /// with an explicit stack), each sorted, in the order they complete.
    fn components(&self) -> Vec<Vec<u32>> {
        const UNSEEN: u32 = u32::MAX;
        let nodes = self.starts.len() - 1;
        let mut index = vec![UNSEEN; nodes];
        let mut low = vec![0u32; nodes];
        let mut on_stack = vec![false; nodes];
        let mut stack: Vec<u32> = Vec::new();
        // (node, position of the next edge to follow)
        let mut calls: Vec<(u32, u32)> = Vec::new();
        let mut next_index = 0u32;
        let mut components = Vec::new();
        for root in 0..nodes as u32 {
            if index[root as usize] != UNSEEN || self.out(root).is_empty() {
                continue;
            }
            calls.push((root, self.starts[root as usize]));
            index[root as usize] = next_index;
            low[root as usize] = next_index;
            next_index += 1;
            stack.push(root);
            on_stack[root as usize] = true;
            while let Some(&mut (node, ref mut next)) = calls.last_mut() {
                if *next < self.starts[node as usize + 1] {
                    let target = self.edges[*next as usize].to;
                    *next += 1;
                    if index[target as usize] == UNSEEN {
                        index[target as usize] = next_index;
                        low[target as usize] = next_index;
                        next_index += 1;
                        stack.push(target);
                        on_stack[target as usize] = true;
                        calls.push((target, self.starts[target as usize]));
                    } else if on_stack[target as usize] {
                        low[node as usize] = low[node as usize].min(index[target as usize]);
                    }
                    continue;
                }
                calls.pop();
                if let Some(&(parent, _)) = calls.last() {
                    low[parent as usize] = low[parent as usize].min(low[node as usize]);
                }
                if low[node as usize] == index[node as usize] {
                    let mut component = Vec::new();
                    loop {
                        let member = stack.pop().expect("the node is on the stack");
                        on_stack[member as usize] = false;
                        component.push(member);
                        if member == node {
                            break;
                        }
                    }
                    if component.len() > 1 {
                        component.sort_unstable();
                        components.push(component);
                    }
                }
            }
        }
        components
    }

    /// A shortest cycle inside a component through an edge that `through` accepts (the
    /// first such edge, in node order): that edge, then a breadth-first path back.
    fn cycle(&self, component: &[u32], through: impl Fn(&Edge) -> bool) -> Option<Vec<Edge>> {
        let inside = |node: u32| component.binary_search(&node).is_ok();
        let start = component
            .iter()
            .flat_map(|&node| self.out(node))
            .find(|edge| inside(edge.to) && through(edge))?;
        // Breadth-first from the edge's target back to its source, inside the component.
        let mut came_by: Vec<Option<Edge>> = vec![None; component.len()];
        let position = |node: u32| component.binary_search(&node).expect("inside");
        let mut queue = std::collections::VecDeque::from([start.to]);
        let mut reached = vec![false; component.len()];
        reached[position(start.to)] = true;
        while let Some(node) = queue.pop_front() {
            if node == start.from {
                break;
            }
            for edge in self.out(node).iter().filter(|edge| inside(edge.to)) {
                let at = position(edge.to);
                if !reached[at] {
                    reached[at] = true;
                    came_by[at] = Some(*edge);
                    queue.push_back(edge.to);
                }
            }
        }
        let mut path = Vec::new();
        let mut node = start.from;
        while node != start.to {
            let edge = came_by[position(node)]?;
            path.push(edge);
            node = edge.from;
        }
        path.reverse();
        let mut cycle = vec![*start];
        cycle.extend(path);
        Some(cycle)
    }
}

fn report(
    digest: &Digest<'_>,
    findings: &mut Findings<'_>,
    invariant: Invariant,
    guarantee: Guarantee,
    cycle: &[Edge],
) {
    let partition = None;
    findings.found(invariant, guarantee, partition, || {
        let name = |txn: u32| {
            let txn = &digest.txns[txn as usize];
            format!("`{}` (process {}, line {})", txn.txn_id, txn.process, txn.last_event() + 2)
        };
        let mut steps = Vec::new();
        let mut witness: Vec<Witness> = Vec::new();
        for edge in cycle {
            witness
                .push(digest.witness.event(digest.txns[edge.from as usize].last_event() as usize));
            let (first, second) = (&digest.sends[edge.first as usize], edge.second);
            let step = match edge.dep {
                Dep::Ww => {
                    let second = &digest.sends[second as usize];
                    let at = |value: u32| digest.landing(value).map_or(0, |(offset, _)| offset);
                    for value in [edge.first, edge.second] {
                        match digest.landing(value) {
                            Some((_, Some(claim))) => {
                                witness.push(digest.claim_witness(&digest.claims[claim as usize]))
                            }
                            _ => {
                                let send = &digest.sends[value as usize];
                                let event = send.completion.unwrap_or(send.invoke);
                                witness.push(digest.witness.event(event as usize));
                            }
                        }
                    }
                    format!(
                        "ww on partition {}: `{}` at {} before `{}` at {}",
                        digest.partition_id(first.part),
                        first.value,
                        at(edge.first),
                        second.value,
                        at(edge.second)
                    )
                }
                Dep::Wr => {
                    let claim = &digest.claims[second as usize];
                    witness.push(digest.claim_witness(claim));
                    format!(
                        "wr on partition {}: read `{}` at {}",
                        digest.partition_id(first.part),
                        first.value,
                        claim.offset
                    )
                }
            };
            steps.push(format!("{} -> {} ({step})", name(edge.from), name(edge.to)));
        }
        let kind = if invariant == Invariant::G0 { "write cycle" } else { "cycle" };
        let explanation = format!("a {kind} of {} transactions: {}", cycle.len(), steps.join(", "));
        (explanation, witness)
    });
}
