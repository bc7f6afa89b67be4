import t from 'tap'
const x: number = 1
t.equal(x, 1)
t.ok(Number(process.versions.node.split('.')[0]) >= 22, 'runs on node >= 22')
