module github.com/drainmeter/drainmeter

go 1.26
